"""Captions for scenes, with a configurable bias: how often each property is mentioned.

Web alt-text names the object and its colour but rarely its orientation, count, position or
state; that bias is why CLIP misses detail. ``CaptionBias`` sets, per property, the probability
that a caption states it. ``describe`` is the deterministic core (a chosen set of properties),
also used for MMVP statements, so captions and statements share one grammar and one vocabulary.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainer.scenes.world import COUNT_WORDS, Scene, Thing

PROPERTIES: tuple[str, ...] = (
    "shape",
    "color",
    "direction",
    "mark",
    "state",
    "count",
    "position",
    "structure",
    "view",
)
TEMPLATES: tuple[str, ...] = ("a photo of {}", "{}", "an image of {}", "a drawing of {}")


class CaptionBias(BaseModel):
    """Probability that a caption mentions each property (1.0 = always, 0.0 = never)."""

    model_config = ConfigDict(extra="forbid")

    shape: float = Field(0.95, ge=0, le=1)
    color: float = Field(0.95, ge=0, le=1)
    direction: float = Field(0.1, ge=0, le=1)
    mark: float = Field(0.1, ge=0, le=1)
    state: float = Field(0.1, ge=0, le=1)
    count: float = Field(0.1, ge=0, le=1)
    position: float = Field(0.1, ge=0, le=1)
    structure: float = Field(0.1, ge=0, le=1)
    view: float = Field(0.1, ge=0, le=1)

    @classmethod
    def rare(cls, probability: float, common: float = 0.95) -> CaptionBias:
        """Shape and colour with ``common``, every fine property with ``probability``."""
        return cls(**{p: common if p in ("shape", "color") else probability for p in PROPERTIES})

    @classmethod
    def full(cls) -> CaptionBias:
        """Every property, every time: the diffusion model's captions."""
        return cls(**dict.fromkeys(PROPERTIES, 1.0))


def sample_caption(scene: Scene, rng: np.random.Generator, bias: CaptionBias | None = None) -> str:
    """A caption that mentions each property with the bias's probability, in a random template."""
    bias = bias or CaptionBias()
    mentioned = {p for p in PROPERTIES if rng.random() < getattr(bias, p)}
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    # Both phrasings of a relation, so "left" and "right" each mean something to the text tower.
    mirrored = not scene.is_group and "position" in mentioned and bool(rng.random() < 0.5)
    return template.format(describe(scene, mentioned, mirrored=mirrored))


def describe(scene: Scene, mentioned: set[str] | frozenset[str], *, mirrored: bool = False) -> str:
    """The scene in words, stating exactly the ``mentioned`` properties that apply to it.

    ``mirrored`` states a two-object position from the other side ("B to the right of A").
    """
    unknown = set(mentioned) - set(PROPERTIES)
    if unknown:
        raise ValueError(f"unknown properties {sorted(unknown)}; choose from {PROPERTIES}")
    things = scene.things
    if scene.is_group:
        count = len(things) if "count" in mentioned or len(things) == 1 else None
        return thing_phrase(things[0], mentioned, count=count, plural=len(things) > 1)
    first, second = (thing_phrase(t, set(mentioned) - {"count"}) for t in things)
    if "position" in mentioned:
        return f"{second} to the right of {first}" if mirrored else f"{first} to the left of {second}"
    return f"{first} and {second}"


def thing_phrase(
    thing: Thing, mentioned: set[str] | frozenset[str], *, count: int | None = 1, plural=False
) -> str:
    """ "a hollow red arrow pointing left", "three striped blue stars with a dot", ..."""
    words: list[str] = []
    if "state" in mentioned:
        words.append("filled" if thing.filled else "hollow")
    if "structure" in mentioned and thing.filled:
        words.append("striped" if thing.striped else "plain")
    if "color" in mentioned:
        words.append(thing.color)
    noun = thing.shape if "shape" in mentioned else "shape"
    words.append(noun + ("es" if plural and noun == "box" else "s" if plural else ""))
    if "direction" in mentioned and thing.direction is not None:
        words.append(f"pointing {thing.direction}")
    if "mark" in mentioned:
        if thing.mark is None:
            words.append("without a dot")
        elif thing.mark == "dot":
            words.append("with a dot")
        else:
            words.append(f"with the letter {thing.mark}")
    if "view" in mentioned and thing.view is not None:
        words.append("seen from the front" if thing.view == "front" else "seen from an angle")
    if count is None:
        article = ""
    elif count == 1 and "count" not in mentioned:
        article = "an " if words[0][0] in "aeiou" else "a "
    else:
        article = COUNT_WORDS[count] + " "
    return article + " ".join(words)
