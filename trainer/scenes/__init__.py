"""The drawn world (contract B): scenes, rendering, biased captions and MMVP-style pairs.

Pure numpy + PIL, cheap to import: the evaluation area draws its synthetic MMVP set from here and
the lab trains its tiny CLIP and diffusion model on it.
"""

from trainer.scenes.captions import PROPERTIES, CaptionBias, describe, sample_caption, thing_phrase
from trainer.scenes.pairs import (
    CLASSIFICATION_TASKS,
    PATTERN_PROPERTY,
    PATTERNS,
    ScenePair,
    draw_labelled,
    draw_pair,
)
from trainer.scenes.render import render
from trainer.scenes.world import COLORS, SHAPES, Placement, Scene, Thing, layout, sample_scene, sample_thing

__all__ = [
    "CLASSIFICATION_TASKS",
    "COLORS",
    "PATTERNS",
    "PATTERN_PROPERTY",
    "PROPERTIES",
    "SHAPES",
    "CaptionBias",
    "Placement",
    "Scene",
    "ScenePair",
    "Thing",
    "describe",
    "draw_labelled",
    "draw_pair",
    "layout",
    "render",
    "sample_caption",
    "sample_scene",
    "sample_thing",
    "thing_phrase",
]
