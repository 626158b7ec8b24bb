"""Which models exist, and the loaded ones kept in an LRU under a memory budget.

Models come from three places: the built-in lab models (``trainer/lab/builtin``), the registry
folder ``$DIVA_HOME/models`` (every finished job lands there) and ``DIVA_MODELS`` entries
(``id=open_clip_name:tag_or_path``, ``id=hf-hub:org/repo`` or ``id=/path/to/open_clip_folder``).
Folders are re-read when an unknown id is asked for and a manifest's mtime is checked on every
``get``, so a model written later (or rewritten in place) is served without a restart.

Runtimes are built by name through :data:`RUNTIME_FACTORIES` (``torch``, ``onnx``, and
``triton`` from the export area's ``triton_runtime``; more with :func:`register_runtime`).
The chosen runtime is the request's ``runtime`` (query parameter or body field), else
``DIVA_RUNTIME``; each (model, runtime) pair is loaded once. ``auto`` (the default) is ONNX
Runtime on CPU for a model whose folder holds an fp32 ONNX export of both towers, and PyTorch
otherwise (GPUs, models without an export): ``bench/peers.py`` measured ONNX Runtime ahead on CPU
(it runs a batch without holding the GIL, so the event loop keeps serving). Nothing here
imports torch until a model is loaded.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.inference.spec import ModelSpec, RuntimeUnavailable, serving_cpu_threads
from state import catalog
from state.catalog import ModelNotFound
from state.owners import SYSTEM, Viewer
from trainer.artifacts import ModelArtifact, list_artifacts

if TYPE_CHECKING:
    from service.inference.preprocessing import ModelIO
    from service.inference.runtime import EncoderRuntime
    from state.settings import Settings

log = logging.getLogger("diva.registry")


RuntimeFactory = Callable[["ModelSpec", "Settings"], "EncoderRuntime"]


def _torch_factory(spec: ModelSpec, settings: Settings) -> EncoderRuntime:
    from service.inference.torch_runtime import TorchRuntime

    return TorchRuntime.load(
        spec.source,
        spec.pretrained,
        device=settings.device,
        precision=settings.precision,
        threads=settings.torch_threads,
        cuda_graphs=settings.cuda_graphs,
        max_batch=settings.batch_max_size,
    )


def _onnx_factory(spec: ModelSpec, settings: Settings) -> EncoderRuntime:
    from service.inference.onnx_runtime import OnnxRuntime

    if spec.artifact is None:
        raise RuntimeUnavailable(f"model {spec.id!r} is not a registry folder, so it has no ONNX export")
    return OnnxRuntime.load(
        spec.artifact.onnx_dir, device=settings.device, threads=serving_cpu_threads(settings.torch_threads)
    )


def _triton_factory(spec: ModelSpec, settings: Settings) -> EncoderRuntime:
    from service.inference.triton_runtime import triton_factory

    return triton_factory(spec, settings)


RUNTIME_FACTORIES: dict[str, RuntimeFactory] = {
    "torch": _torch_factory,
    "onnx": _onnx_factory,
    "triton": _triton_factory,
}


AUTO_RUNTIME = "auto"


def _serves_onnx(onnx_dir: Path) -> bool:
    """An fp32 export of both towers (fp16 graphs are slower than fp32 on CPU providers)."""
    from trainer.export.onnx import read_preprocess

    try:
        info = read_preprocess(onnx_dir)
    except (FileNotFoundError, ValueError):
        return False
    files = info.get("files", {})
    present = all((onnx_dir / files.get(tower, "")).is_file() for tower in ("visual", "textual"))
    return present and info.get("precision") == "fp32"


def register_runtime(name: str, factory: RuntimeFactory) -> None:
    """Make a runtime selectable by name (``?runtime=name`` or ``DIVA_RUNTIME=name``)."""
    RUNTIME_FACTORIES[name] = factory


def parse_model_entry(entry: str) -> ModelSpec:
    """``id=source`` from ``DIVA_MODELS`` -> a spec; bad entries raise naming the entry."""
    from trainer.artifacts import InvalidModelId, check_model_id

    model_id, sep, source = entry.partition("=")
    if not sep or not source.strip():
        raise ValueError(
            f"bad DIVA_MODELS entry {entry!r}: expected 'id=open_clip_name:tag_or_path', "
            "'id=hf-hub:org/repo' or 'id=/path/to/open_clip_folder'"
        )
    try:
        model_id = check_model_id(model_id.strip())
    except InvalidModelId as exc:
        raise ValueError(f"bad DIVA_MODELS entry {entry!r}: {exc}") from None
    source = source.strip()
    if source.startswith(("hf-hub:", "local-dir:")) or Path(source).is_dir():
        return ModelSpec(id=model_id, source=source)
    name, _, pretrained = source.partition(":")
    return ModelSpec(id=model_id, source=name, pretrained=pretrained or None)


@dataclass
class LoadedModel:
    """A model in memory: its runtime, its preprocessing, its batchers and inference thread."""

    spec: ModelSpec
    runtime_name: str
    runtime: EncoderRuntime
    io: ModelIO
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "diva-infer"))
    batchers: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # per-model helpers (e.g. a GPU decoder)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def memory_bytes(self) -> int:
        return int(getattr(self.runtime, "memory_bytes", 0) or 0)

    def close(self) -> None:
        self.executor.shutdown(wait=False)
        self.runtime.close()


class ModelRegistry:
    """Reads the model folders; loads models lazily; evicts the least recently used."""

    def __init__(
        self,
        settings: Settings,
        *,
        roots: list[Path] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.roots = roots if roots is not None else catalog.model_roots(settings)
        self.budget_bytes = settings.model_memory_budget_mb << 20
        self._on_change = on_change
        self._lock = threading.RLock()
        self._load_locks: dict[tuple[str, str], threading.Lock] = {}
        self._auto_choices: dict[tuple[str, Any], str] = {}
        self._specs: dict[str, ModelSpec] = {}
        self._loaded: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._configured = [parse_model_entry(e) for e in settings.models]
        self.refresh()

    # --- what exists -------------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Re-scan the folders (cheap: manifests only); return the ids now known."""
        specs: dict[str, ModelSpec] = {}
        for artifact in list_artifacts(*self.roots):
            spec = self._spec_of(artifact)
            if spec is not None:
                specs[spec.id] = spec
        for spec in self._configured:
            specs.setdefault(spec.id, spec)
        with self._lock:
            self._specs = specs
        return sorted(specs)

    @staticmethod
    def _spec_of(artifact: ModelArtifact) -> ModelSpec | None:
        try:
            manifest = artifact.read_manifest()
            version = artifact.manifest_path.stat().st_mtime_ns
        except (OSError, ValueError) as exc:
            log.warning(
                "skipping model folder with a bad manifest",
                extra={"path": str(artifact.root), "error": str(exc)},
            )
            return None
        if not manifest.published:
            return None
        return ModelSpec(
            id=artifact.id,
            source=str(artifact.open_clip_dir),
            artifact=artifact,
            manifest=manifest,
            version=version,
        )

    def list(self, viewer: Viewer = SYSTEM) -> list[ModelSpec]:
        """Every model ``viewer`` may use: public ones and its own (see :mod:`state.owners`)."""
        self.refresh()
        with self._lock:
            return [self._specs[k] for k in sorted(self._specs) if viewer.can_see_model(self._specs[k].owner)]

    def spec(self, model_id: str, viewer: Viewer = SYSTEM) -> ModelSpec:
        """The current spec of ``model_id`` (re-reading its manifest if it changed on disk).

        Another owner's model is :class:`ModelNotFound`, and the message lists only the ids
        ``viewer`` may see, so a 404 never tells one tenant another's model ids.
        """
        with self._lock:
            spec = self._specs.get(model_id)
        if spec is not None and spec.artifact is not None:
            try:
                changed = spec.artifact.manifest_path.stat().st_mtime_ns != spec.version
            except OSError:
                changed = True
            if changed:
                spec = None
        if spec is None:
            self.refresh()
            with self._lock:
                spec = self._specs.get(model_id)
        if spec is None or not viewer.can_see_model(spec.owner):
            known = ", ".join(s.id for s in self.list(viewer)) or "none"
            raise ModelNotFound(f"unknown model {model_id!r}; available: {known}")
        return spec

    def artifact(self, model_id: str, viewer: Viewer = SYSTEM) -> ModelArtifact:
        spec = self.spec(model_id, viewer)
        if spec.artifact is None:
            raise ModelNotFound(f"model {model_id!r} comes from DIVA_MODELS and has no registry folder")
        return spec.artifact

    # --- what is loaded ----------------------------------------------------------------------
    def runtime_name(self, requested: str | None, spec: ModelSpec | None = None) -> str:
        """The runtime a request gets: its own choice, else ``DIVA_RUNTIME``; ``auto`` resolved."""
        name = requested or self.settings.runtime
        if name == AUTO_RUNTIME:
            return self._auto_runtime(spec)
        if name not in RUNTIME_FACTORIES:
            raise RuntimeUnavailable(
                f"unknown runtime {name!r}; available: {AUTO_RUNTIME}, {', '.join(sorted(RUNTIME_FACTORIES))}"
            )
        return name

    def _auto_runtime(self, spec: ModelSpec | None) -> str:
        """Decided once per model version (requests ask on every call, from the event loop)."""
        if spec is None or spec.artifact is None:
            return "torch"
        key = (spec.id, spec.version)
        choice = self._auto_choices.get(key)
        if choice is None:
            from service.inference.torch_runtime import resolve_device

            on_cpu = resolve_device(self.settings.device) == "cpu"
            choice = "onnx" if on_cpu and _serves_onnx(spec.artifact.onnx_dir) else "torch"
            self._auto_choices[key] = choice
        return choice

    def get(self, model_id: str, runtime: str | None = None, viewer: Viewer = SYSTEM) -> LoadedModel:
        """The loaded model (loading it on first use; blocking: call from a worker thread)."""
        spec = self.spec(model_id, viewer)
        name = self.runtime_name(runtime, spec)
        key = (model_id, name)
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is not None and loaded.spec.version == spec.version:
                self._loaded.move_to_end(key)
                return loaded
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                loaded = self._loaded.get(key)
                if loaded is not None and loaded.spec.version == spec.version:
                    return loaded
            fresh = self._load(spec, name)
            with self._lock:
                stale = self._loaded.pop(key, None)
                self._loaded[key] = fresh
                evicted = self._evict(keep=key)
            for old in [stale, *evicted]:
                if old is not None:
                    old.close()
            if self._on_change:
                self._on_change()
            return fresh

    def _load(self, spec: ModelSpec, runtime_name: str) -> LoadedModel:
        log.info("loading model", extra={"model": spec.id, "runtime": runtime_name})
        runtime = RUNTIME_FACTORIES[runtime_name](spec, self.settings)
        io = getattr(runtime, "io", None)
        if io is None:
            io = self._model_io(spec, runtime)
        return LoadedModel(spec=spec, runtime_name=runtime_name, runtime=runtime, io=io)

    @staticmethod
    def _model_io(spec: ModelSpec, runtime: EncoderRuntime) -> ModelIO:
        """Preprocessing for runtimes without a torch model: open_clip config, else the export's."""
        from service.inference import preprocessing

        if spec.artifact is not None and spec.artifact.open_clip_dir.is_dir():
            return preprocessing.model_io_from_open_clip_folder(spec.artifact.open_clip_dir)
        info = getattr(runtime, "info", None)
        if info:
            return preprocessing.model_io_from_onnx_export(info)
        runtime.close()
        raise RuntimeUnavailable(
            f"model {spec.id!r} has no preprocessing config (open_clip/ or preprocess.json)"
        )

    def _evict(self, keep: tuple[str, str]) -> list[LoadedModel]:
        evicted = []
        while (
            len(self._loaded) > 1 and sum(m.memory_bytes for m in self._loaded.values()) > self.budget_bytes
        ):
            key = next(k for k in self._loaded if k != keep)
            evicted.append(self._loaded.pop(key))
            log.info("evicted model", extra={"model": key[0], "runtime": key[1]})
        return evicted

    def unload(self, model_id: str) -> None:
        """Drop every loaded runtime of ``model_id`` (its folder was deleted) and forget it."""
        with self._lock:
            keys = [key for key in self._loaded if key[0] == model_id]
            models = [self._loaded.pop(key) for key in keys]
        for model in models:
            model.close()
        self.refresh()
        if models and self._on_change:
            self._on_change()

    def loaded(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._loaded)

    def close(self) -> None:
        with self._lock:
            models, self._loaded = list(self._loaded.values()), OrderedDict()
        for model in models:
            model.close()


def peek_loaded(
    registry: ModelRegistry, model_id: str, runtime: str | None, viewer: Viewer = SYSTEM
) -> LoadedModel | None:
    """The loaded model if it is already in memory and current; never loads (event-loop safe)."""
    spec = registry.spec(model_id, viewer)
    key = (model_id, registry.runtime_name(runtime, spec))
    with registry._lock:
        loaded = registry._loaded.get(key)
        if loaded is not None and loaded.spec.version == spec.version:
            registry._loaded.move_to_end(key)
            return loaded
    return None
