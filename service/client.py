"""Python client for a running diva service (httpx; sync :class:`DivaClient`, async :class:`AsyncDivaClient`).

    from service.client import DivaClient
    with DivaClient("http://127.0.0.1:8000", api_key="...") as diva:
        vectors = diva.embed_texts(["a red cube"])          # numpy [N, D], unit length
        vectors = diva.embed_images(["cat.jpg", png_bytes])  # paths or bytes
        ranked = diva.classify(["cat.jpg"], ["cat", "dog"])  # [[("cat", 0.93), ("dog", 0.07)]]
        head = diva.fit_head({"up": ["u1.png", "u2.png"], "down": ["d1.png", "d2.png"]}, name="arrows")
        ranked = diva.classify(["new.png"], head=head["id"])  # the head's labels, few-shot

Errors come back as :class:`DivaApiError` carrying the server's status, type and message.
Defaults for the URL and key: ``DIVA_URL`` and ``DIVA_API_KEY``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import httpx
import numpy as np

ImageSource = Union[str, Path, bytes]
Examples = Union[Mapping[str, Sequence[ImageSource]], Sequence[tuple[ImageSource, str]]]
DEFAULT_URL = "http://127.0.0.1:8000"


class DivaApiError(RuntimeError):
    """A non-2xx answer: ``status``, ``type`` and ``message`` from the JSON error body."""

    def __init__(self, status: int, type: str, message: str) -> None:
        super().__init__(f"{status} {type}: {message}")
        self.status, self.type, self.message = status, type, message


def _image_b64(image: ImageSource) -> str:
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return base64.b64encode(data).decode("ascii")


def _embedding_body(inputs: list[Any], model: str | None, normalize: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"input": inputs, "normalize": normalize, "encoding_format": "base64"}
    if model:
        body["model"] = model
    return body


def _vectors(payload: dict[str, Any]) -> np.ndarray:
    rows = sorted(payload["data"], key=lambda row: row["index"])
    return np.stack([np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4") for row in rows])


def _ranked(payload: dict[str, Any]) -> list[list[tuple[str, float]]]:
    return [[(item["label"], item["score"]) for item in row["labels"]] for row in payload["data"]]


def _classify_body(images, labels, templates, top_k, model, head=None) -> dict[str, Any]:
    body: dict[str, Any] = {"images": [_image_b64(i) for i in images]}
    for key, value in (("labels", labels), ("templates", templates), ("top_k", top_k), ("model", model)):
        if value is not None:
            body[key] = list(value) if key in ("labels", "templates") else value
    if head is not None:
        body["head"] = head
    return body


def _fit_head_body(examples: Examples | None, name: str, **fields: Any) -> dict[str, Any]:
    """``examples`` as {label: [images]} or [(image, label)]; ``fields`` left out when None."""
    body: dict[str, Any] = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
    if examples is not None:
        pairs = (
            [(image, label) for label, images in examples.items() for image in images]
            if isinstance(examples, Mapping)
            else list(examples)
        )
        body["examples"] = [{"image": _image_b64(image), "label": label} for image, label in pairs]
    return body


def _raise_for_error(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            raise DivaApiError(response.status_code, error["type"], error["message"])
        except (ValueError, KeyError, TypeError):
            raise DivaApiError(response.status_code, "http_error", response.text[:500]) from None
    return response.json() if response.content else {}


def _client_args(url: str | None, api_key: str | None, timeout: float) -> dict[str, Any]:
    key = api_key if api_key is not None else os.environ.get("DIVA_API_KEY")
    return {
        "base_url": url or os.environ.get("DIVA_URL", DEFAULT_URL),
        "headers": {"Authorization": f"Bearer {key}"} if key else {},
        "timeout": timeout,
    }


class DivaClient:
    """Blocking client; use as a context manager or call :meth:`close`."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.http = httpx.Client(**_client_args(url, api_key, timeout))

    def __enter__(self) -> DivaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _raise_for_error(self.http.request(method, path, **kwargs))

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/healthz")

    def models(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/models")["data"]

    def model(self, model_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/models/{model_id}")

    def embed(self, inputs: list[Any], model: str | None = None, normalize: bool = True) -> np.ndarray:
        """Raw ``input`` items (strings, ``{"text"}``, ``{"image"}``) -> [N, D] float32."""
        return _vectors(
            self.request("POST", "/v1/embeddings", json=_embedding_body(inputs, model, normalize))
        )

    def embed_texts(self, texts: list[str], model: str | None = None, normalize: bool = True) -> np.ndarray:
        return self.embed(list(texts), model, normalize)

    def embed_images(
        self, images: list[ImageSource], model: str | None = None, normalize: bool = True
    ) -> np.ndarray:
        return self.embed([{"image": _image_b64(i)} for i in images], model, normalize)

    def classify(
        self,
        images: list[ImageSource],
        labels: list[str] | None = None,
        templates: list[str] | None = None,
        top_k: int | None = None,
        model: str | None = None,
        head: str | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Per image, (label, probability) pairs, best first; with ``head``, its labels by default."""
        body = _classify_body(images, labels, templates, top_k, model, head)
        return _ranked(self.request("POST", "/v1/classify", json=body))

    def fit_head(
        self,
        examples: Examples | None = None,
        *,
        name: str,
        model: str | None = None,
        kind: str | None = None,
        dataset: str | None = None,
        shots: int | None = None,
        text_weight: float | None = None,
        templates: list[str] | None = None,
    ) -> dict[str, Any]:
        """Fit a few-shot head from ``{label: [images]}``, ``[(image, label)]`` or an uploaded ``dataset``."""
        body = _fit_head_body(
            examples,
            name,
            model=model,
            kind=kind,
            dataset=dataset,
            shots=shots,
            text_weight=text_weight,
            templates=templates,
        )
        return self.request("POST", "/v1/heads", json=body)

    def heads(self, model: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/heads", params={"model": model} if model else None)["data"]

    def head(self, head_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/heads/{head_id}")

    def delete_head(self, head_id: str) -> None:
        self.request("DELETE", f"/v1/heads/{head_id}")


class AsyncDivaClient:
    """The same calls for asyncio code."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.http = httpx.AsyncClient(**_client_args(url, api_key, timeout))

    async def __aenter__(self) -> AsyncDivaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _raise_for_error(await self.http.request(method, path, **kwargs))

    async def models(self) -> list[dict[str, Any]]:
        return (await self.request("GET", "/v1/models"))["data"]

    async def embed(self, inputs: list[Any], model: str | None = None, normalize: bool = True) -> np.ndarray:
        body = _embedding_body(inputs, model, normalize)
        return _vectors(await self.request("POST", "/v1/embeddings", json=body))

    async def embed_texts(
        self, texts: list[str], model: str | None = None, normalize: bool = True
    ) -> np.ndarray:
        return await self.embed(list(texts), model, normalize)

    async def embed_images(
        self, images: list[ImageSource], model: str | None = None, normalize: bool = True
    ) -> np.ndarray:
        return await self.embed([{"image": _image_b64(i)} for i in images], model, normalize)

    async def classify(
        self,
        images: list[ImageSource],
        labels: list[str] | None = None,
        templates: list[str] | None = None,
        top_k: int | None = None,
        model: str | None = None,
        head: str | None = None,
    ) -> list[list[tuple[str, float]]]:
        body = _classify_body(images, labels, templates, top_k, model, head)
        return _ranked(await self.request("POST", "/v1/classify", json=body))

    async def fit_head(self, examples: Examples | None = None, *, name: str, **fields: Any) -> dict[str, Any]:
        return await self.request("POST", "/v1/heads", json=_fit_head_body(examples, name, **fields))

    async def heads(self, model: str | None = None) -> list[dict[str, Any]]:
        params = {"model": model} if model else None
        return (await self.request("GET", "/v1/heads", params=params))["data"]

    async def delete_head(self, head_id: str) -> None:
        await self.request("DELETE", f"/v1/heads/{head_id}")
