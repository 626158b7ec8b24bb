"""The drawn world: what a scene is and how random scenes are sampled.

A scene is a handful of flat objects on a white canvas. Every property that MMVP-VLM probes
(orientation, a feature's presence, state, count, position, colour, structure, text, viewpoint)
is an explicit field, so a caption can state it and a pair can differ in exactly one of them.
Scenes are plain frozen dataclasses: rendering and captioning are pure functions of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "triangle", "arrow", "box", "star")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 40, 180),
    "orange": (245, 130, 20),
}
DIRECTIONS: tuple[str, ...] = ("up", "right", "down", "left")
LETTERS: tuple[str, ...] = ("a", "e", "h", "l", "t", "x")
VIEWS: tuple[str, ...] = ("front", "angle")
COUNT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four")
MAX_COUNT = 4

#: shapes whose direction is visible (a circle or a box has none)
DIRECTED_SHAPES = ("triangle", "arrow")
#: shapes drawn in 3-D, so the viewpoint is visible
VIEWED_SHAPES = ("box",)


@dataclass(frozen=True)
class Thing:
    """One object. Fields that do not apply to the shape are ``None`` (a circle has no direction)."""

    shape: str
    color: str
    filled: bool = True
    striped: bool = False
    mark: str | None = None  # None, "dot", or one of LETTERS
    direction: str | None = None
    view: str | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; choose one of {SHAPES}")
        if self.color not in COLORS:
            raise ValueError(f"unknown colour {self.color!r}; choose one of {tuple(COLORS)}")
        if self.mark is not None and self.mark != "dot" and self.mark not in LETTERS:
            raise ValueError(f"unknown mark {self.mark!r}; choose None, 'dot' or one of {LETTERS}")
        if (self.direction is not None) != (self.shape in DIRECTED_SHAPES):
            raise ValueError(
                f"a {self.shape} {'needs' if self.shape in DIRECTED_SHAPES else 'has no'} direction"
            )
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}; choose one of {DIRECTIONS}")
        if (self.view is not None) != (self.shape in VIEWED_SHAPES):
            raise ValueError(f"a {self.shape} {'needs' if self.shape in VIEWED_SHAPES else 'has no'} view")
        if self.view is not None and self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; choose one of {VIEWS}")
        if self.striped and not self.filled:
            raise ValueError("a hollow object cannot be striped")


@dataclass(frozen=True)
class Placement:
    """Where an object sits, in canvas units (0..1): centre and half-size."""

    cx: float
    cy: float
    radius: float


@dataclass(frozen=True)
class Scene:
    """Objects left to right / top to bottom. Several equal objects form a countable group."""

    things: tuple[Thing, ...]
    placements: tuple[Placement, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.things) <= MAX_COUNT:
            raise ValueError(f"a scene holds 1..{MAX_COUNT} objects, got {len(self.things)}")
        if len(self.placements) != len(self.things):
            raise ValueError("one placement per object")

    @property
    def is_group(self) -> bool:
        """All objects equal: the caption counts them ("three red stars")."""
        return all(t == self.things[0] for t in self.things)


_SLOTS: dict[int, tuple[tuple[float, float], ...]] = {
    1: ((0.5, 0.5),),
    2: ((0.27, 0.5), (0.73, 0.5)),
    3: ((0.27, 0.27), (0.73, 0.27), (0.5, 0.73)),
    4: ((0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73)),
}
_RADIUS = {1: 0.36, 2: 0.21, 3: 0.2, 4: 0.2}


def layout(count: int, rng: np.random.Generator, jitter: float = 0.025) -> tuple[Placement, ...]:
    """Fixed slots with a little jitter, so objects never overlap and stay inside the canvas."""
    if count not in _SLOTS:
        raise ValueError(f"count must be 1..{MAX_COUNT}, got {count}")
    radius = _RADIUS[count]
    out = []
    for cx, cy in _SLOTS[count]:
        dx, dy = rng.uniform(-jitter, jitter, size=2)
        out.append(Placement(cx + float(dx), cy + float(dy), radius * float(rng.uniform(0.9, 1.0))))
    return tuple(out)


def sample_thing(rng: np.random.Generator, **fixed: object) -> Thing:
    """A random object; keyword arguments pin fields (``shape="arrow"``, ``filled=True`` ...)."""
    shape = str(fixed.get("shape", rng.choice(SHAPES)))
    filled = bool(fixed.get("filled", rng.random() < 0.75))
    fields = {
        "shape": shape,
        "color": str(fixed.get("color", rng.choice(list(COLORS)))),
        "filled": filled,
        "striped": bool(fixed.get("striped", filled and rng.random() < 0.3)),
        "mark": fixed.get("mark", _random_mark(rng)),
        "direction": fixed.get(
            "direction", str(rng.choice(DIRECTIONS)) if shape in DIRECTED_SHAPES else None
        ),
        "view": fixed.get("view", str(rng.choice(VIEWS)) if shape in VIEWED_SHAPES else None),
    }
    return Thing(**fields)  # type: ignore[arg-type]


def _random_mark(rng: np.random.Generator) -> str | None:
    draw = rng.random()
    if draw < 0.6:
        return None
    if draw < 0.8:
        return "dot"
    return str(rng.choice(LETTERS))


def sample_scene(rng: np.random.Generator) -> Scene:
    """A random scene: one object (half the time), a group of 2-4 equal ones, or two different ones."""
    draw = rng.random()
    if draw < 0.5:
        things: tuple[Thing, ...] = (sample_thing(rng),)
    elif draw < 0.8:
        count = int(rng.integers(2, MAX_COUNT + 1))
        things = (sample_thing(rng),) * count
    else:
        first = sample_thing(rng)
        second = sample_thing(rng, shape=rng.choice([s for s in SHAPES if s != first.shape]))
        things = (first, second)
    return Scene(things, layout(len(things), rng))


def with_things(scene: Scene, things: tuple[Thing, ...], rng: np.random.Generator | None = None) -> Scene:
    """The same scene holding other objects (a new layout only when the count changes)."""
    if len(things) == len(scene.things):
        return replace(scene, things=things)
    if rng is None:
        raise ValueError("a new count needs an rng for the new layout")
    return Scene(things, layout(len(things), rng))


#: the fine properties ``vary`` can change (colour and shape are what biased captions already name)
VARIED_PROPERTIES: tuple[str, ...] = ("direction", "mark", "state", "count", "position", "structure", "view")


def varied_properties(scene: Scene) -> tuple[str, ...]:
    """The fine properties of ``scene`` that ``vary`` can change (a circle has no direction ...)."""
    return tuple(p for p in VARIED_PROPERTIES if _applies(scene, p))


def _applies(scene: Scene, prop: str) -> bool:
    if prop == "count":
        return scene.is_group
    if prop == "position":
        return not scene.is_group
    return any(_can_vary(thing, prop) for thing in scene.things)


def vary(scene: Scene, rng: np.random.Generator, prop: str | None = None) -> Scene:
    """A twin of ``scene`` that differs in exactly one fine property (``prop``, or a random one).

    Twins are hard negatives: a contrastive batch that holds a scene and its twin can only be
    solved by reading the property they differ in, which a random batch almost never demands
    (two different objects swapped left and right, say), so a CLIP trained on random batches
    learns its captions as bags of words.
    """
    options = varied_properties(scene)
    prop = prop or str(rng.choice(options))
    if prop not in options:
        raise ValueError(f"cannot vary {prop!r} of this scene; it has {options}")
    if prop == "position":
        return replace(scene, things=scene.things[::-1])
    if prop == "count":
        counts = [n for n in range(1, MAX_COUNT + 1) if n != len(scene.things)]
        return with_things(scene, (scene.things[0],) * int(rng.choice(counts)), rng)
    eligible = [i for i, t in enumerate(scene.things) if _can_vary(t, prop)]
    index = eligible[int(rng.integers(len(eligible)))]
    changed = _vary_thing(scene.things[index], prop, rng)
    if scene.is_group:
        return replace(scene, things=(changed,) * len(scene.things))
    return replace(scene, things=tuple(changed if i == index else t for i, t in enumerate(scene.things)))


def _can_vary(thing: Thing, prop: str) -> bool:
    return {
        "direction": thing.direction is not None,
        "mark": True,
        "state": True,
        "structure": thing.filled,
        "view": thing.view is not None,
    }[prop]


def _vary_thing(thing: Thing, prop: str, rng: np.random.Generator) -> Thing:
    """The same object with ``prop`` changed: a dot comes or goes, a letter becomes another ..."""
    if prop == "direction":
        return replace(thing, direction=str(rng.choice([d for d in DIRECTIONS if d != thing.direction])))
    if prop == "mark":
        if thing.mark is None or thing.mark == "dot":
            return replace(thing, mark=None if thing.mark == "dot" else "dot")
        return replace(thing, mark=str(rng.choice([m for m in LETTERS if m != thing.mark])))
    if prop == "state":
        return replace(thing, filled=not thing.filled, striped=False)
    if prop == "structure":
        return replace(thing, striped=not thing.striped)
    return replace(thing, view="angle" if thing.view == "front" else "front")
