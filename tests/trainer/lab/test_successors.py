"""diva lab successors: recipes post-train the same base and are scored on the development draw
and on held-out test draws (shrunk here to a few steps, images and pairs)."""

from __future__ import annotations

import pytest

from trainer.lab.successors import SUCCESSOR_RECIPES, compare_successors, format_successors


@pytest.mark.slow
def test_two_recipes_on_the_same_base_and_draws(tmp_path):
    recipes = {name: SUCCESSOR_RECIPES[name] for name in ("diva-condition", "genhancer", "lab-diva")}
    seen: list[str] = []
    results = compare_successors(
        tmp_path,
        recipes=recipes,
        test_pairs=2,
        feedback_images=8,
        extra_overrides={"steps": 2, "batch_size": 2, "checkpoint_every": 2},
        denoiser_overrides={"steps": 2, "batch_size": 2},
        denoiser_scenes=16,
        on_result=lambda name, _: seen.append(name),
    )
    assert seen == ["diva-condition", "genhancer", "lab-diva"]
    own = tmp_path / "denoisers" / "genhancer"
    assert (own / "model_index.json").is_file() and not own.with_name("genhancer.partial").exists()
    for result in results.values():
        held = result["held_out"]
        assert len(held["draws"]) == 5 and held["protocol"]["pairs_per_pattern"] == 2
        assert -100 <= held["gain"]["mean"] <= 100 and -100 <= result["development_gain"] <= 100
    table = format_successors(results)
    assert table.count("\n") == 5 and "| lab-diva |" in table and "| genhancer |" in table


def test_a_genhancer_denoiser_reads_the_image_embedding_not_the_caption():
    """Stage 1 of GenHancer: the condition is the frozen CLIP's embedding of the image denoised,
    built as post-training's CLS-only condition is (embedding_condition)."""
    import torch

    from trainer.artifacts import BUILTIN_MODELS_DIR
    from trainer.backbones.factory import create_clip
    from trainer.lab.data import make_scene_set, normalise
    from trainer.lab.diffusion_pretrain import embedding_condition, image_condition

    clip = create_clip(str(BUILTIN_MODELS_DIR / "lab-clip-base" / "open_clip"))
    scenes = make_scene_set(3, seed=0, size=64)
    prompt = torch.randn(1, 36, clip.embed_dim)
    clip.model.train()
    condition = image_condition(clip, scenes.images, prompt)
    assert clip.model.training, "the bundle's mode is left as it was"
    clip.model.eval()
    with torch.no_grad():
        embeds = clip.model.encode_image(normalise(scenes.images, clip.mean, clip.std))
    assert torch.allclose(condition, embedding_condition(embeds, prompt), atol=1e-6)
    assert not torch.allclose(condition[0], condition[1]), "another image, another condition"
