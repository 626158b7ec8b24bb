"""Render styles: the canonical look is the default, a sampled look keeps what the scene says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.lab.data import make_scene_set
from trainer.scenes import Placement, Scene, Thing, render, sample_scene
from trainer.scenes.render import CANONICAL, RenderStyle, sample_style


def _scenes(count: int, seed: int = 3) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [sample_scene(rng) for _ in range(count)]


def test_the_default_style_is_the_canonical_look() -> None:
    for scene in _scenes(20):
        assert render(scene, 48).tobytes() == render(scene, 48, CANONICAL).tobytes()
        assert render(scene, 48).getpixel((0, 0)) == (255, 255, 255)


def test_a_sampled_look_keeps_every_object_inside_the_canvas_on_its_background() -> None:
    looks = np.random.default_rng(0)
    for scene in _scenes(200):
        style = sample_style(looks, scene)
        image = np.asarray(render(scene, 64, style)).astype(int)
        rim = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        assert np.abs(rim - np.array(style.background)).max() <= 1, "an object touches the edge"
        assert 0.35 <= style.scale <= 1.3 and abs(style.tilt_deg) <= 12


def test_a_group_is_never_shrunk_below_legible_and_a_lone_object_spans_small_to_large() -> None:
    looks = np.random.default_rng(1)
    lone = Scene((Thing("circle", "blue"),), (Placement(0.5, 0.5, 0.36),))
    group = Scene(
        (Thing("star", "red"),) * 4, tuple(Placement(x, y, 0.2) for x in (0.27, 0.73) for y in (0.27, 0.73))
    )
    lone_scales = [sample_style(looks, lone).scale for _ in range(300)]
    assert min(lone_scales) < 0.45 and max(lone_scales) > 1.05
    assert min(sample_style(looks, group).scale for _ in range(300)) >= 0.7


def test_hard_edges_paint_only_the_palette_and_the_canvas() -> None:
    scene = Scene((Thing("circle", "blue"),), (Placement(0.5, 0.5, 0.36),))
    style = RenderStyle(background=(200, 200, 200), antialias=False)
    colours = {tuple(p) for p in np.asarray(render(scene, 64, style)).reshape(-1, 3)}
    assert colours == {(200, 200, 200), (30, 70, 220)}
    soft = {
        tuple(p)
        for p in np.asarray(render(scene, 64, RenderStyle(background=(200, 200, 200)))).reshape(-1, 3)
    }
    assert len(soft) > 2, "anti-aliased edges blend the two"


def test_a_tilt_turns_a_pointing_shape_but_keeps_where_it_points() -> None:
    def arrow(direction: str, tilt: float = 0.0) -> np.ndarray:
        scene = Scene((Thing("arrow", "green", direction=direction),), (Placement(0.5, 0.5, 0.36),))
        return np.asarray(render(scene, 64, RenderStyle(tilt_deg=tilt))).astype(int)

    tilted = arrow("right", 10)
    assert np.abs(arrow("right") - tilted).max() > 100
    for other in ("up", "down", "left"):
        assert np.abs(arrow("right") - tilted).sum() < np.abs(arrow(other) - tilted).sum() / 2


def test_a_styled_scene_set_holds_the_same_scenes_with_other_looks() -> None:
    plain = make_scene_set(64, seed=4, size=32)
    styled = make_scene_set(64, seed=4, size=32, style_share=0.5)
    assert styled.scenes == plain.scenes
    changed = (styled.images != plain.images).flatten(1).any(dim=1).float().mean().item()
    assert 0.25 < changed < 0.75
    assert make_scene_set(64, seed=4, size=32, style_share=0.5).images.equal(styled.images)
    with pytest.raises(ValueError, match="fraction"):
        make_scene_set(4, seed=4, style_share=1.5)


def test_several_looks_per_scene_draw_each_scene_anew() -> None:
    styled = make_scene_set(16, seed=4, size=32, style_share=1.0, looks=3)
    plain = make_scene_set(16, seed=4, size=32)
    assert len(styled) == 48 and styled.scenes[0::3] == plain.scenes == styled.scenes[2::3]
    firsts, seconds = styled.images[0::3], styled.images[1::3]
    assert (firsts != seconds).flatten(1).any(dim=1).all(), "each look of a scene is another drawing"
    with pytest.raises(ValueError, match="one look"):
        make_scene_set(4, seed=4, looks=0)


def test_fresh_looks_redraw_a_share_of_the_batch_and_never_repeat() -> None:
    from trainer.lab.data import fresh_looks

    data = make_scene_set(32, seed=4, size=32)
    index = torch.arange(32)
    rng = np.random.default_rng(0)
    assert fresh_looks(data, index, 0.0, rng).equal(data.images)
    first, second = fresh_looks(data, index, 1.0, rng), fresh_looks(data, index, 1.0, rng)
    changed = (first != data.images).flatten(1).any(dim=1)
    assert changed.float().mean() > 0.75, "almost every image gets another look"
    assert (first != second).flatten(1).any(dim=1).float().mean() > 0.75, "and a new one each step"
    half = (fresh_looks(data, index, 0.5, rng) != data.images).flatten(1).any(dim=1).float().mean()
    assert 0.2 < half < 0.8
    assert data.images.equal(make_scene_set(32, seed=4, size=32).images), "the set itself is untouched"
