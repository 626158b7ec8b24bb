"""The drawn world: determinism, pairs that differ in exactly their pattern's property, bias."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from trainer.scenes import (
    CLASSIFICATION_TASKS,
    PATTERNS,
    CaptionBias,
    Thing,
    draw_labelled,
    draw_pair,
    render,
    sample_caption,
    sample_scene,
)

# Thing field each single-object pattern varies.
_FIELD = {
    "Orientation and Direction": "direction",
    "Presence of Specific Features": "mark",
    "State and Condition": "filled",
    "Color and Appearance": "color",
    "Structural Characteristics": "striped",
    "Texts": "mark",
    "Viewpoint and Perspective": "view",
}


def test_nine_patterns_in_official_order() -> None:
    assert len(PATTERNS) == 9
    assert PATTERNS[0] == "Orientation and Direction"
    assert PATTERNS[-1] == "Viewpoint and Perspective"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pair_is_deterministic_for_a_seed(pattern: str) -> None:
    a = draw_pair(pattern, np.random.default_rng(7), size=32)
    b = draw_pair(pattern, np.random.default_rng(7), size=32)
    assert a.statements == b.statements
    for x, y in zip(a.images, b.images):
        assert x.size == (32, 32) and x.mode == "RGB"
        assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pair_differs_in_exactly_its_property(pattern: str) -> None:
    rng = np.random.default_rng(0)
    for _ in range(12):
        pair = draw_pair(pattern, rng)
        first, second = pair.scenes
        assert pair.statements[0] != pair.statements[1]
        pixels = [np.asarray(im, dtype=np.int16) for im in pair.images]
        assert np.abs(pixels[0] - pixels[1]).max() > 100, "the difference must be visible"
        if pattern == "Quantity and Count":
            assert len(first.things) != len(second.things)
            assert set(first.things) == set(second.things) and first.is_group
            assert pair.statements[0].split()[0] != pair.statements[1].split()[0]
        elif pattern == "Positional and Relational Context":
            assert first.things == second.things[::-1] and first.things[0] != first.things[1]
            assert first.placements == second.placements
            assert "left" in pair.statements[0] and "right" in pair.statements[1]
        else:
            (a,), (b,) = first.things, second.things
            changed = {f.name for f in fields(Thing) if getattr(a, f.name) != getattr(b, f.name)}
            assert changed == {_FIELD[pattern]}
            assert first.placements == second.placements


def test_statements_name_the_property_of_their_own_image() -> None:
    rng = np.random.default_rng(3)
    for _ in range(10):
        pair = draw_pair("Orientation and Direction", rng)
        for scene, statement in zip(pair.scenes, pair.statements):
            assert statement.endswith(f"pointing {scene.things[0].direction}")
        pair = draw_pair("Color and Appearance", rng)
        for scene, statement in zip(pair.scenes, pair.statements):
            assert scene.things[0].color in statement.split()


def test_labelled_images_and_bad_labels() -> None:
    rng = np.random.default_rng(1)
    for task, labels in CLASSIFICATION_TASKS.items():
        for label in labels:
            assert draw_labelled(task, label, rng, size=32).size == (32, 32)
    with pytest.raises(ValueError, match="unknown classification task"):
        draw_labelled("texture", "striped", rng)
    with pytest.raises(ValueError, match="unknown color label"):
        draw_labelled("color", "teal", rng)
    with pytest.raises(ValueError, match="unknown MMVP pattern"):
        draw_pair("Texture", rng)


def test_inconsistent_things_are_rejected() -> None:
    with pytest.raises(ValueError, match="circle has no direction"):
        Thing("circle", "red", direction="up")
    with pytest.raises(ValueError, match="hollow object cannot be striped"):
        Thing("star", "red", filled=False, striped=True)
    with pytest.raises(ValueError, match="unknown colour"):
        Thing("star", "teal")


def test_render_is_a_pure_function_of_the_scene() -> None:
    scene = sample_scene(np.random.default_rng(5))
    assert render(scene, 48).tobytes() == render(scene, 48).tobytes()
    blank = np.asarray(render(scene, 48)).min()
    assert blank < 200, "something is drawn on the white canvas"


def test_caption_bias_sets_how_often_a_property_is_mentioned() -> None:
    rng = np.random.default_rng(11)
    scenes = [sample_scene(rng) for _ in range(1500)]
    biased = [sample_caption(s, rng, CaptionBias(direction=0.1, count=0.5)) for s in scenes]
    directed = [c for s, c in zip(scenes, biased) if any(t.direction for t in s.things)]
    rate = np.mean(["pointing" in c for c in directed])
    assert 0.05 < rate < 0.16, rate
    groups = [c for s, c in zip(scenes, biased) if s.is_group and len(s.things) > 1]
    count_rate = np.mean([bool({"two", "three", "four"} & set(c.split())) for c in groups])
    assert 0.4 < count_rate < 0.6, count_rate
    never = [sample_caption(s, rng, CaptionBias(direction=0.0)) for s in scenes[:300]]
    assert not any("pointing" in c for c in never)
    full = [sample_caption(s, rng, CaptionBias.full()) for s in scenes if s.things[0].direction][:300]
    assert all("pointing" in c for c in full)
    with pytest.raises(ValueError):
        CaptionBias(direction=1.5)
    with pytest.raises(ValueError):
        CaptionBias(orientation=0.1)


def test_position_captions_use_both_phrasings_and_stay_true() -> None:
    """ "B to the right of A" as often as "A to the left of B", so both words carry meaning."""
    from trainer.scenes.captions import thing_phrase

    rng = np.random.default_rng(4)
    pairs = [s for s in (sample_scene(rng) for _ in range(600)) if not s.is_group][:150]
    seen = {"left": 0, "right": 0}
    for scene in pairs:
        caption = sample_caption(scene, rng, CaptionBias.full())
        first, second = (
            thing_phrase(t, {"shape", "color", "state", "structure", "direction", "mark", "view"})
            for t in scene.things
        )
        if f"{first} to the left of {second}" in caption:
            seen["left"] += 1
        else:
            assert f"{second} to the right of {first}" in caption, caption
            seen["right"] += 1
    assert min(seen.values()) > 0.3 * len(pairs), seen


def test_twins_differ_in_exactly_one_fine_property() -> None:
    """``vary`` changes one property that applies, visibly, and says so in a full caption."""
    from trainer.scenes import PROPERTIES, describe
    from trainer.scenes.world import varied_properties, vary

    rng = np.random.default_rng(4)
    seen = set()
    for _ in range(300):
        scene = sample_scene(rng)
        prop = str(rng.choice(varied_properties(scene)))
        twin = vary(scene, rng, prop)
        seen.add(prop)
        assert describe(scene, set(PROPERTIES)) != describe(twin, set(PROPERTIES))
        assert np.abs(np.asarray(render(scene), np.int16) - np.asarray(render(twin), np.int16)).max() > 100
        assert twin.is_group == scene.is_group
        if prop == "count":
            assert twin.things[0] == scene.things[0] and len(twin.things) != len(scene.things)
            continue
        assert twin.placements == scene.placements
        if prop == "position":
            assert twin.things == scene.things[::-1]
            continue
        changed = {
            f.name
            for a, b in zip(scene.things, twin.things)
            for f in fields(Thing)
            if getattr(a, f.name) != getattr(b, f.name)
        }
        expected = {"state": {"filled"}, "structure": {"striped"}}.get(prop, {prop})
        assert changed - {"striped"} == expected - {"striped"} and changed, (prop, changed)
    assert seen == {"direction", "mark", "state", "count", "position", "structure", "view"}


def test_a_property_that_does_not_apply_cannot_be_varied() -> None:
    from trainer.scenes import Placement, Scene
    from trainer.scenes.world import vary

    circle = Scene((Thing("circle", "red"),), (Placement(0.5, 0.5, 0.3),))
    with pytest.raises(ValueError, match="cannot vary 'direction'"):
        vary(circle, np.random.default_rng(0), "direction")
    with pytest.raises(ValueError, match="cannot vary 'position'"):
        vary(circle, np.random.default_rng(0), "position")
