"""diva lab successors: recipes post-train the same base and are scored on the development draw
and on held-out test draws (shrunk here to a few steps, images and pairs)."""

from __future__ import annotations

import pytest

from trainer.lab.successors import SUCCESSOR_RECIPES, compare_successors, format_successors


@pytest.mark.slow
def test_two_recipes_on_the_same_base_and_draws(tmp_path):
    recipes = {name: SUCCESSOR_RECIPES[name] for name in ("diva-condition", "lab-diva")}
    seen: list[str] = []
    results = compare_successors(
        tmp_path,
        recipes=recipes,
        test_pairs=2,
        feedback_images=8,
        extra_overrides={"steps": 2, "batch_size": 2, "checkpoint_every": 2},
        on_result=lambda name, _: seen.append(name),
    )
    assert seen == ["diva-condition", "lab-diva"]
    for result in results.values():
        held = result["held_out"]
        assert len(held["draws"]) == 5 and held["protocol"]["pairs_per_pattern"] == 2
        assert -100 <= held["gain"]["mean"] <= 100 and -100 <= result["development_gain"] <= 100
    table = format_successors(results)
    assert table.count("\n") == 4 and "| lab-diva |" in table
