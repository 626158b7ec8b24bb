"""Triton runtime: forward preprocessed batches to a Triton server with tritonclient.

The server hosts the repository written by ``diva export MODEL --format triton`` (models
``<id>-visual`` / ``<id>-textual``, or the names given in ``DIVA_TRITON_MODELS``); the gateway
keeps decoding, tokenising and batching, Triton runs the encoders (and batches again across
gateway replicas). Selected per request (``?runtime=triton``) or for every model
(``DIVA_RUNTIME=triton``) through the registry's runtime table.

Nothing here needs torch. tritonclient's HTTP client is built on gevent and must stay on the
thread that made it, so each thread gets its own client (the registry calls from worker threads).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from service.inference.runtime import RuntimeFailure
from service.inference.spec import RuntimeUnavailable

if TYPE_CHECKING:
    from service.inference.spec import ModelSpec
    from state.settings import Settings

_TOWERS = {
    "visual": ("pixel_values", "FP32", "image_embeds"),
    "textual": ("input_ids", "INT64", "text_embeds"),
}


class TritonUnavailable(RuntimeFailure):
    """The server is unreachable, or does not serve the model this runtime was asked for."""


class TritonRuntime:
    """:class:`~service.inference.runtime.EncoderRuntime` over tritonclient HTTP or gRPC."""

    name = "triton"

    def __init__(
        self,
        url: str,
        models: dict[str, str],
        *,
        protocol: str = "http",
        timeout_s: float = 60.0,
        logit_scale: float = 100.0,
        logit_bias: float | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        if protocol not in ("http", "grpc"):
            raise ValueError(f"triton protocol must be 'http' or 'grpc', got {protocol!r}")
        self.url = url
        self.protocol = protocol
        self.timeout_s = timeout_s
        self.models = dict(models)
        self.logit_scale = logit_scale
        self.logit_bias = logit_bias
        self.info = info or {}
        self.memory_bytes = 0  # the weights live in the Triton server, not in this process
        self._local = threading.local()
        self._max_batch = {tower: self._check_model(tower, model) for tower, model in self.models.items()}

    @classmethod
    def from_spec(cls, spec: ModelSpec, settings: Settings) -> TritonRuntime:
        """The runtime for a registry model: names from settings, scale/bias from its export."""
        models = triton_model_names(spec.id, settings.triton_models)
        info = _export_info(spec)
        scale, bias = _logit_scale_and_bias(spec, info)
        return cls(
            settings.triton_url,
            models,
            protocol=settings.triton_protocol,
            timeout_s=settings.triton_timeout_s,
            logit_scale=scale,
            logit_bias=bias,
            info=info,
        )

    # --- EncoderRuntime ------------------------------------------------------------------------
    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        return self._infer("visual", np.ascontiguousarray(pixels, dtype=np.float32))

    def encode_texts(self, tokens: np.ndarray) -> np.ndarray:
        return self._infer("textual", np.ascontiguousarray(tokens, dtype=np.int64))

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

    # --- internals -----------------------------------------------------------------------------
    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "http":
                import tritonclient.http as http

                client = http.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            else:
                import tritonclient.grpc as grpc

                client = grpc.InferenceServerClient(self.url)
            self._local.client = client
        return client

    def _module(self) -> Any:
        if self.protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
        return module

    def _check_model(self, tower: str, model: str) -> int:
        """Fail early and clearly if Triton does not serve ``model`` as this tower; its max batch."""
        from tritonclient.utils import InferenceServerException

        client = self._client()
        try:
            ready = client.is_model_ready(model)
            if self.protocol == "grpc":
                config = client.get_model_config(model, as_json=True)["config"]
            else:
                config = client.get_model_config(model)
        except (InferenceServerException, OSError, ConnectionError) as exc:
            raise TritonUnavailable(f"Triton at {self.url} ({self.protocol}) is unreachable: {exc}") from exc
        if not ready:
            raise TritonUnavailable(f"Triton at {self.url} does not serve a ready model {model!r}")
        input_name, _, output_name = _TOWERS[tower]
        inputs = [i["name"] for i in config.get("input", [])]
        outputs = [o["name"] for o in config.get("output", [])]
        if inputs != [input_name] or outputs != [output_name]:
            raise TritonUnavailable(
                f"Triton model {model!r} has inputs {inputs} / outputs {outputs}; "
                f"a {tower} tower needs [{input_name!r}] / [{output_name!r}]"
            )
        return int(config.get("max_batch_size", 0) or 0)

    def _infer(self, tower: str, array: np.ndarray) -> np.ndarray:
        model = self.models.get(tower)
        if model is None:
            raise TritonUnavailable(f"no Triton model is configured for the {tower} tower")
        limit = self._max_batch.get(tower) or len(array) or 1
        parts = [self._infer_once(tower, model, array[i : i + limit]) for i in range(0, len(array), limit)]
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    def _infer_once(self, tower: str, model: str, array: np.ndarray) -> np.ndarray:
        from tritonclient.utils import InferenceServerException

        module = self._module()
        input_name, datatype, output_name = _TOWERS[tower]
        request = module.InferInput(input_name, list(array.shape), datatype)
        request.set_data_from_numpy(array)
        wanted = [module.InferRequestedOutput(output_name)]
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        try:
            result = self._client().infer(model, [request], outputs=wanted, **kwargs)
        except InferenceServerException as exc:
            raise TritonUnavailable(f"Triton model {model!r} failed: {exc.message()}") from exc
        except (OSError, ConnectionError) as exc:  # the server went away after loading
            raise TritonUnavailable(f"Triton at {self.url} is unreachable: {exc}") from exc
        return result.as_numpy(output_name).astype(np.float32, copy=False)


def triton_model_names(model_id: str, entries: list[str]) -> dict[str, str]:
    """``{"visual": ..., "textual": ...}`` for ``model_id`` from ``DIVA_TRITON_MODELS`` entries."""
    for entry in entries:
        key, sep, names = entry.partition("=")
        if not sep:
            raise ValueError(
                f"bad DIVA_TRITON_MODELS entry {entry!r}: expected 'id=visual_name/textual_name'"
            )
        if key.strip() == model_id:
            visual, _, textual = names.partition("/")
            return {k: v.strip() for k, v in (("visual", visual), ("textual", textual)) if v.strip()}
    return {"visual": f"{model_id}-visual", "textual": f"{model_id}-textual"}


def triton_factory(spec: ModelSpec, settings: Settings) -> TritonRuntime:
    """Registry runtime factory (``RUNTIME_FACTORIES["triton"]``)."""
    try:
        return TritonRuntime.from_spec(spec, settings)
    except (TritonUnavailable, ValueError) as exc:
        raise RuntimeUnavailable(str(exc)) from exc


def _export_info(spec: ModelSpec) -> dict[str, Any]:
    """``preprocess.json`` of the model's Triton or ONNX export, if any (scale, bias, sizes)."""
    artifact = spec.artifact
    if artifact is None:
        return {}
    for path in (artifact.triton_dir / "onnx" / "preprocess.json", artifact.onnx_dir / "preprocess.json"):
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def _logit_scale_and_bias(spec: ModelSpec, info: dict[str, Any]) -> tuple[float, float | None]:
    """From the export's JSON, else read from the open_clip weights (safetensors, no torch)."""
    if "logit_scale" in info:
        bias = info.get("logit_bias")
        return float(info["logit_scale"]), None if bias is None else float(bias)
    weights = Path(spec.source) / "open_clip_model.safetensors"
    if weights.is_file():
        from safetensors import safe_open

        with safe_open(str(weights), framework="np") as handle:
            keys = set(handle.keys())
            scale = float(np.exp(handle.get_tensor("logit_scale"))) if "logit_scale" in keys else 100.0
            bias = float(handle.get_tensor("logit_bias")) if "logit_bias" in keys else None
        return scale, bias
    return 100.0, None
