"""A projector that starts where the diffusion model reads captions, fitted on text alone.

DIVA hands the CLIP's visual embedding to a frozen diffusion model through a new ``Linear``. When
that model reads captions through a text encoder of its own (Stable Diffusion's OpenCLIP-H, or a
lab-sd trained on a separate text teacher), a random start sends the first feedback through a
random rotation, and an identity start assumes the two spaces are one. The CLIP's image and text
embeddings share its joint space, so a map fitted from the CLIP's text embeddings to the diffusion
text encoder's pooled embeddings *of the same captions* also carries an image to where the
diffusion model expects a caption of it: no images, no labels and no training steps, only a list
of captions (``projector_captions``).

A square map is fitted as a rotation (orthogonal Procrustes), so a direction-only condition
(``normalize: true``) keeps its length; a map between widths is fitted by least squares.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from trainer.feedback.conditions import unit_scaled
from trainer.feedback.diffusion import prompt_ids

BATCH = 256


def read_captions(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 caption file; a clear error when there are too few to fit."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    captions = [line for line in lines if line]
    if len(captions) < 2:
        raise ValueError(f"{path}: projector_captions needs at least two captions, found {len(captions)}")
    return captions


@torch.no_grad()
def clip_text_embeddings(bundle, captions: list[str]) -> torch.Tensor:
    """The CLIP's joint-space text embeddings [N, D] (what its image embeddings are trained to meet)."""
    model = bundle.model
    was_training = model.training
    model.eval()
    parts = [
        model.encode_text(bundle.tokenizer(captions[i : i + BATCH])) for i in range(0, len(captions), BATCH)
    ]
    model.train(was_training)
    return torch.cat(parts).float()


@torch.no_grad()
def diffusion_text_embeddings(folder: str | Path, captions: list[str]) -> torch.Tensor:
    """The diffusion model's pooled text embeddings [N, C] of ``captions``.

    ``text_embeds`` where its ``text_encoder/`` has a projection (lab-sd, SD-2.x's OpenCLIP
    export), the pooled final token otherwise (SD-1.x's ``CLIPTextModel``).
    """
    from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(folder)
    config = json.loads((folder / "text_encoder" / "config.json").read_text())
    projected = "CLIPTextModelWithProjection" in config.get("architectures", [])
    kind = CLIPTextModelWithProjection if projected else CLIPTextModel
    encoder = kind.from_pretrained(str(folder), subfolder="text_encoder").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), subfolder="tokenizer")
    parts = []
    for i in range(0, len(captions), BATCH):
        ids = prompt_ids(encoder, tokenizer, captions[i : i + BATCH])
        out = encoder(ids)
        parts.append(out.text_embeds if projected else out.pooler_output)
    return torch.cat(parts).float()


def fit_bridge(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight [C, D] and bias [C] of the linear map that best sends rows of ``source`` to ``target``.

    Square: the rotation minimising ``||source W^T - target||`` (orthogonal Procrustes, zero
    bias). Otherwise least squares with a bias.
    """
    if source.shape[0] != target.shape[0]:
        raise ValueError(f"{source.shape[0]} source rows against {target.shape[0]} target rows")
    width_in, width_out = source.shape[1], target.shape[1]
    if width_in == width_out:
        u, _, vh = torch.linalg.svd(target.T @ source)
        return u @ vh, torch.zeros(width_out)
    ones = torch.ones(source.shape[0], 1)
    solution = torch.linalg.lstsq(torch.cat([source, ones], dim=1), target).solution  # [D + 1, C]
    return solution[:-1].T.contiguous(), solution[-1].contiguous()


def caption_embeddings(
    bundle, diffusion_folder: str | Path, captions: list[str], normalize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs a bridge is fitted on: the CLIP's and the diffusion model's embeddings of ``captions``.

    ``normalize`` is the condition's: both sides are direction-only (``unit_scaled``) as the
    condition and a lab-sd trained on :func:`~trainer.lab.diffusion_pretrain.embedding_condition` see them.
    """
    source = clip_text_embeddings(bundle, captions)
    target = diffusion_text_embeddings(diffusion_folder, captions)
    if normalize:
        source, target = unit_scaled(source), unit_scaled(target)
    return source, target


def load_bridge(projector: nn.Linear, source: torch.Tensor, target: torch.Tensor) -> float:
    """Set ``projector`` to the map fitted on the pairs; return the mean cosine it reaches on them."""
    if (target.shape[1], source.shape[1]) != tuple(projector.weight.shape):
        raise ValueError(
            f"projector is {tuple(projector.weight.shape)} but the embeddings are "
            f"{source.shape[1]} -> {target.shape[1]}"
        )
    weight, bias = fit_bridge(source, target)
    with torch.no_grad():
        projector.weight.copy_(weight)
        projector.bias.copy_(bias)
        fitted = projector(source)
    return float(torch.nn.functional.cosine_similarity(fitted, target, dim=-1).mean())


def init_text_bridge(
    projector: nn.Module, bundle, diffusion_folder: str | Path, captions: list[str], normalize: bool
) -> float:
    """Set a linear ``projector`` to the fitted map; return the mean cosine it reaches on the captions."""
    if not isinstance(projector, nn.Linear):
        raise ValueError(f"projector_init text needs a linear projector, got {type(projector).__name__}")
    return load_bridge(projector, *caption_embeddings(bundle, diffusion_folder, captions, normalize))


def text_bridge(
    bundle, diffusion_folder: str | Path, captions: list[str], normalize: bool = True
) -> nn.Linear:
    """A frozen fitted map from ``bundle``'s joint space to the diffusion condition (probes)."""
    source, target = caption_embeddings(bundle, diffusion_folder, captions, normalize)
    bridge = nn.Linear(source.shape[1], target.shape[1])
    load_bridge(bridge, source, target)
    return bridge.requires_grad_(False)
