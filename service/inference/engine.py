"""The request path between HTTP handlers and runtimes: decode, preprocess, batch, normalise.

Handlers call :class:`InferenceEngine` with raw inputs and get float32 embeddings back. Image
decoding and preprocessing run in a thread pool (never on the event loop); forward passes go
through one :class:`Batcher` per (model, runtime, modality); label embeddings for zero-shot
classification are cached in an LRU keyed by model version, labels and templates.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from concurrent.futures import Executor

import numpy as np

from service.core.errors import ApiError
from service.core.metrics import Metrics
from service.images import ImageDecodeError, ImageLimits, decode_image
from service.inference.batcher import Batcher, QueueFull
from service.inference.registry import LoadedModel, ModelRegistry, peek_loaded
from service.inference.runtime import RuntimeFailure
from service.inference.spec import RuntimeUnavailable
from state.catalog import ModelNotFound
from state.owners import SYSTEM, Viewer
from state.settings import Settings

log = logging.getLogger("diva.engine")


def _stack_tensors(items: list):
    from service.inference.tensor_decode import stack_tensors

    return stack_tensors(items)


def _tokenize_and_encode(model: LoadedModel, texts: list[str]) -> np.ndarray:
    """One batch of strings -> [N, D + 1]: the embeddings, then each row's token count (exact in
    float32), so the batcher hands every request its rows and its usage in one array."""
    tokens = model.io.tokens(texts)
    vectors = model.runtime.encode_texts(tokens)
    counts = model.io.token_counts(tokens)[:, None].astype(vectors.dtype)
    return np.concatenate([vectors, counts], axis=1)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class InferenceEngine:
    """One per app (``app.state.engine``)."""

    def __init__(
        self, registry: ModelRegistry, settings: Settings, metrics: Metrics, decode_executor: Executor
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.decode_executor = decode_executor
        self.limits = ImageLimits.from_settings(settings)
        self._labels: OrderedDict[tuple, np.ndarray] = OrderedDict()

    # --- models ------------------------------------------------------------------------------
    async def model(
        self, model_id: str | None, runtime: str | None = None, viewer: Viewer = SYSTEM
    ) -> LoadedModel:
        """The loaded model (404 unknown or not ``viewer``'s, 400 unusable runtime); loads off the loop."""
        model_id = model_id or self.settings.default_model
        try:
            loaded = peek_loaded(self.registry, model_id, runtime, viewer)
            if loaded is None:
                loaded = await asyncio.to_thread(self.registry.get, model_id, runtime, viewer)
        except ModelNotFound as exc:
            raise ApiError(404, "model_not_found", str(exc)) from None
        except RuntimeUnavailable as exc:
            raise ApiError.bad_request(str(exc)) from None
        except Exception as exc:  # broken files on disk: the server's problem, said plainly
            log.exception("model failed to load", extra={"model": model_id})
            raise ApiError(
                503, "model_unavailable", f"model {model_id!r} could not be loaded ({type(exc).__name__})"
            ) from None
        return loaded

    def batcher(self, model: LoadedModel, modality: str) -> Batcher:
        batcher = model.batchers.get(modality)
        if batcher is None:
            runtime = model.runtime
            forward, stack = {
                "image": (runtime.encode_images, np.stack),
                "text": (lambda texts: _tokenize_and_encode(model, texts), list),
                "image_tensor": (getattr(runtime, "encode_image_tensor", None), _stack_tensors),
            }[modality]
            labels = (model.id, "image" if modality == "image_tensor" else modality)
            batcher = Batcher(
                forward,
                stack=stack,
                executor=model.executor,
                max_batch=self.settings.batch_max_size,
                max_wait_s=self.settings.batch_max_wait_ms / 1000,
                max_queue=self.settings.batch_queue_size,
                on_batch=lambda size, seconds: (
                    self.metrics.batch_size.labels(*labels).observe(size),
                    self.metrics.batch_seconds.labels(*labels).observe(seconds),
                ),
                on_depth=self.metrics.queue_depth.labels(*labels).set,
            )
            model.batchers[modality] = batcher
        return batcher

    async def _run(self, model: LoadedModel, modality: str, items: np.ndarray) -> np.ndarray:
        try:
            return await self.batcher(model, modality).submit(items)
        except QueueFull as exc:
            self.metrics.rejected.labels(model.id, modality).inc(len(items))
            raise ApiError(
                429, "rate_limit_error", str(exc), headers={"Retry-After": str(exc.retry_after_s)}
            ) from None
        except RuntimeFailure as exc:
            log.warning("runtime failed", extra={"model": model.id, "error": str(exc)})
            raise ApiError(503, "runtime_unavailable", str(exc), headers={"Retry-After": "1"}) from None

    # --- images ------------------------------------------------------------------------------
    def _decode_one(self, model: LoadedModel, data: bytes, index: int) -> np.ndarray:
        try:
            image = decode_image(data, self.limits)
        except ImageDecodeError as exc:
            raise ApiError(400, "invalid_image", f"input {index}: {exc.reason}") from None
        return model.io.pixels(image)

    async def preprocess_images(
        self, model: LoadedModel, blobs: list[tuple[int, bytes]]
    ) -> np.ndarray | list:
        """(index, bytes) pairs -> float32 [N, 3, H, W] (or device tensors with the torchvision
        decoder); the first bad image fails the request, naming its index."""
        loop = asyncio.get_running_loop()
        decoder = self._tensor_decoder(model)
        if decoder is not None:

            def on_error(position: int, reason: str) -> ApiError:
                return ApiError(400, "invalid_image", f"input {blobs[position][0]}: {reason}")

            data = [blob for _, blob in blobs]
            return await loop.run_in_executor(self.decode_executor, decoder, data, on_error)
        tasks = [
            loop.run_in_executor(self.decode_executor, self._decode_one, model, data, index)
            for index, data in blobs
        ]
        try:
            return np.stack(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()

    async def encode_images(self, model: LoadedModel, pixels: np.ndarray | list) -> np.ndarray:
        return await self._run(model, "image" if isinstance(pixels, np.ndarray) else "image_tensor", pixels)

    def _tensor_decoder(self, model: LoadedModel):
        """The torchvision decoder when configured and the runtime takes device tensors."""
        if self.settings.image_decoder != "torchvision" or not hasattr(model.runtime, "encode_image_tensor"):
            return None
        decoder = model.extras.get("tensor_decoder")
        if decoder is None:
            from service.inference.tensor_decode import TensorImageDecoder

            decoder = TensorImageDecoder(model.io, model.runtime.device, self.limits)
            model.extras["tensor_decoder"] = decoder
        return decoder

    # --- texts -------------------------------------------------------------------------------
    async def encode_texts(self, model: LoadedModel, texts: list[str]) -> tuple[np.ndarray, int]:
        """Strings -> ([N, D] embeddings, non-padding token count), tokenised a batch at a time.

        Why: tokenising each request on its own cost a thread hop and a tokenizer call per
        request (a third of a small model's text path under load); the batcher's thread now
        tokenises the whole batch in one call, right before the forward pass.
        """
        rows = await self._run(model, "text", texts)
        return rows[:, :-1], int(rows[:, -1].sum())

    # --- zero-shot ---------------------------------------------------------------------------
    async def label_embeddings(
        self, model: LoadedModel, labels: list[str], templates: list[str]
    ) -> np.ndarray:
        """[L, D] unit vectors: each label's prompts encoded, normalised, averaged, renormalised."""
        key = (model.id, model.runtime_name, model.spec.version, tuple(labels), tuple(templates))
        cached = self._labels.get(key)
        if cached is not None:
            self._labels.move_to_end(key)
            self.metrics.label_cache.labels("hit").inc()
            return cached
        self.metrics.label_cache.labels("miss").inc()
        prompts = [template.replace("{}", label) for label in labels for template in templates]
        step = self.settings.batch_max_size  # chunks: a large label set must not overflow the queue
        text = np.concatenate(
            [(await self.encode_texts(model, prompts[i : i + step]))[0] for i in range(0, len(prompts), step)]
        )
        text = l2_normalize(text)
        per_label = text.reshape(len(labels), len(templates), -1).mean(axis=1)
        classifier = l2_normalize(per_label).astype(np.float32)
        self._labels[key] = classifier
        while len(self._labels) > self.settings.label_cache_size:
            self._labels.popitem(last=False)
        return classifier

    @staticmethod
    def label_probabilities(model: LoadedModel, images: np.ndarray, classifier: np.ndarray) -> np.ndarray:
        """Softmax over labels of scaled cosine logits (sigmoid for SigLIP-style models)."""
        logits = model.runtime.logit_scale * l2_normalize(images) @ classifier.T
        if model.runtime.logit_bias is not None:
            return 1.0 / (1.0 + np.exp(-(logits + model.runtime.logit_bias)))
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)
