"""Rendered scene sets: the images once (uint8 in memory), the scenes kept for fresh captions.

Drawing costs well under a millisecond an image, so a set of a few thousand is made in seconds
and every training step can caption its batch anew with a different random bias draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trainer.scenes import CaptionBias, Scene, render, sample_caption, sample_scene
from trainer.scenes.render import CANONICAL, RenderStyle, sample_style
from trainer.scenes.world import VARIED_PROPERTIES, varied_properties, vary


@dataclass
class SceneSet:
    """``images[i]`` ([3, H, W] uint8) is ``scenes[i]`` rendered."""

    scenes: list[Scene]
    images: torch.Tensor

    def __len__(self) -> int:
        return len(self.scenes)

    def captions(self, index: torch.Tensor, rng: np.random.Generator, bias: CaptionBias) -> list[str]:
        return [sample_caption(self.scenes[int(i)], rng, bias) for i in index]


def make_scene_set(
    count: int, seed: int, size: int = 64, style_share: float = 0.0, looks: int = 1
) -> SceneSet:
    """``count`` random scenes drawn at ``size`` px from ``seed`` (same seed, same set).

    With ``looks`` > 1 every scene is drawn that many times (the set holds ``count * looks``
    images, scene by scene), each time in a random :func:`~trainer.scenes.render.sample_style`
    look with probability ``style_share`` and canonically otherwise: a styled look seen once
    per epoch is memorised, fresh ones teach the shape. The looks come from a stream of their
    own, so the *scenes* are the same whatever the share: the lab CLIP's styled set and lab-sd's
    canonical one hold the same scenes and captions.
    """
    if count < 1 or looks < 1:
        raise ValueError(f"a scene set needs at least one image and one look, got {count} and {looks}")
    if not 0.0 <= style_share <= 1.0:
        raise ValueError(f"style_share is a fraction in [0, 1], got {style_share}")
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng) for _ in range(count)]
    if style_share == 0.0:
        return _rendered(scenes, size)
    stream = np.random.default_rng([seed, 3])
    drawn = [scene for scene in scenes for _ in range(looks)]
    styles = [random_look(stream, scene, style_share) for scene in drawn]
    return _rendered(drawn, size, styles)


def random_look(stream: np.random.Generator, scene: Scene, share: float) -> RenderStyle:
    """A random look for ``scene`` with probability ``share``, else the canonical one; no draw
    is taken at share 0, so a canonical set's stream is untouched."""
    return sample_style(stream, scene) if share and stream.random() < share else CANONICAL


def make_twin_pairs(
    count: int, seed: int, size: int = 64, properties: tuple[str, ...] = VARIED_PROPERTIES
) -> tuple[SceneSet, SceneSet]:
    """``count`` twin pairs: scene i of the second set is scene i of the first with one fine
    property changed (``trainer.scenes.world.vary``), the ``properties`` in turn so each gets an
    equal share (a two-object swap would otherwise be one twin in thirty)."""
    unknown = set(properties) - set(VARIED_PROPERTIES)
    if not properties or unknown:
        raise ValueError(f"twin properties must be some of {VARIED_PROPERTIES}, got {properties}")
    rng = np.random.default_rng([seed, 2])
    firsts, seconds = [], []
    for index in range(count):
        prop = properties[index % len(properties)]
        scene = sample_scene(rng)
        while prop not in varied_properties(scene):
            scene = sample_scene(rng)
        firsts.append(scene)
        seconds.append(vary(scene, rng, prop))
    return _rendered(firsts, size), _rendered(seconds, size)


def fresh_looks(data: SceneSet, index: torch.Tensor, share: float, rng: np.random.Generator) -> torch.Tensor:
    """The batch ``data.images[index]`` with about ``share`` of it redrawn in a new random look.

    A look drawn at every step is never seen twice, so a tower cannot memorise it the way it
    memorises a fixed styled set (``make_scene_set(looks=...)``); the scenes, and so the
    captions, stay those of ``index``.
    """
    pixels = data.images[index]
    if not share:  # the canonical batch, and no draws taken from ``rng``
        return pixels
    redraw = [k for k in range(len(index)) if rng.random() < share]
    if redraw:
        scenes = [data.scenes[int(index[k])] for k in redraw]
        styles = [sample_style(rng, scene) for scene in scenes]
        pixels = pixels.clone()
        pixels[redraw] = _rendered(scenes, int(pixels.shape[-1]), styles).images
    return pixels


def _rendered(scenes: list[Scene], size: int, styles: list[RenderStyle] | None = None) -> SceneSet:
    looks = styles or [CANONICAL] * len(scenes)
    pixels = np.stack([np.asarray(render(scene, size, look)) for scene, look in zip(scenes, looks)])
    return SceneSet(scenes, torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous())


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float, as the eval transform does (ToTensor + Normalize)."""
    x = images.float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
