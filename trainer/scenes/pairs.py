"""MMVP-style pairs: two scenes that differ in exactly one property, one statement each.

``draw_pair`` mirrors the MMVP-VLM benchmark's nine visual patterns on the drawn world; the
evaluation area writes them out in the official layout. ``draw_labelled`` draws single objects
for coarse zero-shot classification (shape, colour), the ability post-training must not lose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from trainer.scenes.captions import describe, thing_phrase
from trainer.scenes.render import render
from trainer.scenes.world import (
    COLORS,
    DIRECTED_SHAPES,
    DIRECTIONS,
    LETTERS,
    MAX_COUNT,
    SHAPES,
    Scene,
    Thing,
    layout,
    sample_thing,
)

PATTERNS: tuple[str, ...] = (
    "Orientation and Direction",
    "Presence of Specific Features",
    "State and Condition",
    "Quantity and Count",
    "Positional and Relational Context",
    "Color and Appearance",
    "Structural Characteristics",
    "Texts",
    "Viewpoint and Perspective",
)
#: the scene property each pattern varies (names from ``captions.PROPERTIES``)
PATTERN_PROPERTY: dict[str, str] = dict(
    zip(PATTERNS, ("direction", "mark", "state", "count", "position", "color", "structure", "mark", "view"))
)
CLASSIFICATION_TASKS: dict[str, list[str]] = {"shape": list(SHAPES), "color": list(COLORS)}


@dataclass(frozen=True)
class ScenePair:
    """Two images and two statements; statement i is true of image i only."""

    images: tuple[Image.Image, Image.Image]
    statements: tuple[str, str]
    pattern: str
    scenes: tuple[Scene, Scene]


def draw_pair(pattern: str, rng: np.random.Generator, size: int = 64) -> ScenePair:
    """A random pair for one of :data:`PATTERNS` (deterministic for a seeded ``rng``)."""
    if pattern not in _BUILDERS:
        raise ValueError(f"unknown MMVP pattern {pattern!r}; choose one of {list(PATTERNS)}")
    scenes, statements = _BUILDERS[pattern](rng)
    images = (render(scenes[0], size), render(scenes[1], size))
    return ScenePair(images, statements, pattern, scenes)


def draw_labelled(task: str, label: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One object whose ``task`` property (``"shape"`` or ``"color"``) is ``label``; the rest random."""
    if task not in CLASSIFICATION_TASKS:
        raise ValueError(f"unknown classification task {task!r}; choose one of {list(CLASSIFICATION_TASKS)}")
    if label not in CLASSIFICATION_TASKS[task]:
        raise ValueError(f"unknown {task} label {label!r}; choose one of {CLASSIFICATION_TASKS[task]}")
    thing = sample_thing(rng, **{task: label})
    return render(Scene((thing,), layout(1, rng)), size)


Built = tuple[tuple[Scene, Scene], tuple[str, str]]


def _single_pair(rng: np.random.Generator, first: Thing, second: Thing, prop: str) -> Built:
    place = layout(1, rng)
    scenes = (Scene((first,), place), Scene((second,), place))
    mentioned = {"shape", "color", prop}
    return scenes, (describe(scenes[0], mentioned), describe(scenes[1], mentioned))


def _two_of(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> tuple[str, str]:
    a, b = rng.choice(len(options), size=2, replace=False)
    return str(options[a]), str(options[b])


def _orientation(rng: np.random.Generator) -> Built:
    d1, d2 = _two_of(rng, DIRECTIONS)
    thing = sample_thing(rng, shape=str(rng.choice(DIRECTED_SHAPES)), direction=d1)
    return _single_pair(rng, thing, replace(thing, direction=d2), "direction")


def _presence(rng: np.random.Generator) -> Built:
    thing = sample_thing(rng, mark="dot")
    pair = (thing, replace(thing, mark=None))
    flip = rng.random() < 0.5
    return _single_pair(rng, *(pair[::-1] if flip else pair), "mark")


def _state(rng: np.random.Generator) -> Built:
    thing = sample_thing(rng, filled=True, striped=False)
    pair = (thing, replace(thing, filled=False))
    flip = rng.random() < 0.5
    return _single_pair(rng, *(pair[::-1] if flip else pair), "state")


def _count(rng: np.random.Generator) -> Built:
    thing = sample_thing(rng)
    n1, n2 = _two_of(rng, [str(n) for n in range(1, MAX_COUNT + 1)])
    scenes = tuple(Scene((thing,) * int(n), layout(int(n), rng)) for n in (n1, n2))
    mentioned = {"shape", "color", "count"}
    return scenes, (describe(scenes[0], mentioned), describe(scenes[1], mentioned))  # type: ignore[return-value]


def _position(rng: np.random.Generator) -> Built:
    s1, s2 = _two_of(rng, SHAPES)
    c1, c2 = _two_of(rng, list(COLORS))
    first, second = sample_thing(rng, shape=s1, color=c1), sample_thing(rng, shape=s2, color=c2)
    place = layout(2, rng)
    scenes = (Scene((first, second), place), Scene((second, first), place))
    a, b = thing_phrase(first, {"shape", "color"}), thing_phrase(second, {"shape", "color"})
    return scenes, (f"{a} to the left of {b}", f"{a} to the right of {b}")


def _color(rng: np.random.Generator) -> Built:
    c1, c2 = _two_of(rng, list(COLORS))
    thing = sample_thing(rng, color=c1)
    return _single_pair(rng, thing, replace(thing, color=c2), "color")


def _structure(rng: np.random.Generator) -> Built:
    thing = sample_thing(rng, filled=True, striped=True)
    pair = (thing, replace(thing, striped=False))
    flip = rng.random() < 0.5
    return _single_pair(rng, *(pair[::-1] if flip else pair), "structure")


def _texts(rng: np.random.Generator) -> Built:
    l1, l2 = _two_of(rng, LETTERS)
    thing = sample_thing(rng, shape=str(rng.choice(["circle", "box"])), mark=l1, filled=True, striped=False)
    if thing.view is not None:
        thing = replace(thing, view="front")
    return _single_pair(rng, thing, replace(thing, mark=l2), "mark")


def _viewpoint(rng: np.random.Generator) -> Built:
    thing = sample_thing(rng, shape="box", view="front")
    pair = (thing, replace(thing, view="angle"))
    flip = rng.random() < 0.5
    return _single_pair(rng, *(pair[::-1] if flip else pair), "view")


_BUILDERS: dict[str, Callable[[np.random.Generator], Built]] = dict(
    zip(
        PATTERNS,
        (_orientation, _presence, _state, _count, _position, _color, _structure, _texts, _viewpoint),
    )
)
