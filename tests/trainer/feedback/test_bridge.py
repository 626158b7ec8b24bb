"""The text-fitted projector (``projector_init: text``): the fit, the lab's own pair, the recipe check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.feedback.bridge import clip_text_embeddings, fit_bridge, init_text_bridge, read_captions

BUILTIN = Path("trainer/lab/builtin")


def test_a_square_fit_recovers_a_rotation_and_keeps_lengths() -> None:
    gen = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=gen))
    source = torch.randn(200, 8, generator=gen)
    target = source @ rotation.T + 0.01 * torch.randn(200, 8, generator=gen)
    weight, bias = fit_bridge(source, target)
    assert torch.allclose(weight, rotation, atol=0.01) and torch.count_nonzero(bias) == 0
    assert torch.allclose(weight @ weight.T, torch.eye(8), atol=1e-5)


def test_a_fit_between_widths_recovers_a_linear_map_with_bias() -> None:
    gen = torch.Generator().manual_seed(1)
    true_weight, true_bias = torch.randn(12, 5, generator=gen), torch.randn(12, generator=gen)
    source = torch.randn(300, 5, generator=gen)
    weight, bias = fit_bridge(source, source @ true_weight.T + true_bias)
    assert torch.allclose(weight, true_weight, atol=1e-4) and torch.allclose(bias, true_bias, atol=1e-4)
    with pytest.raises(ValueError, match="rows"):
        fit_bridge(source, torch.randn(10, 12))


def test_the_lab_pair_fits_to_the_identity(tmp_path: Path) -> None:
    """The shipped lab-sd reads captions through lab-clip-base's own text tower, so the fitted
    map between the two is the identity: the fit finds what ``projector_init: identity`` assumes."""
    from trainer.backbones.factory import create_clip
    from trainer.lab.pipeline import write_bridge_captions

    captions = read_captions(write_bridge_captions(tmp_path / "captions.txt", 300, seed=0))
    assert len(captions) == 300 and len(set(captions)) > 100
    bundle = create_clip(str(BUILTIN / "lab-clip-base"))
    projector = torch.nn.Linear(bundle.embed_dim, bundle.embed_dim)
    cosine = init_text_bridge(projector, bundle, BUILTIN / "lab-sd", captions, normalize=True)
    assert cosine > 0.999  # it acts as the identity on the captions' span
    # ... and on captions it was not fitted on. Not on every direction: those no caption spans stay
    # free, and the rotation found there depends on the machine's LAPACK (diagonal 0.98-0.99).
    unseen = read_captions(write_bridge_captions(tmp_path / "unseen.txt", 200, seed=1))
    texts = clip_text_embeddings(bundle, unseen)
    with torch.no_grad():
        mapped = projector(texts)
    assert float(torch.nn.functional.cosine_similarity(mapped, texts).mean()) > 0.99
    with pytest.raises(ValueError, match="linear"):
        init_text_bridge(torch.nn.Sequential(), bundle, BUILTIN / "lab-sd", captions, normalize=True)


def test_a_text_fitted_projector_needs_captions(tmp_path: Path) -> None:
    from trainer.recipes.schema import load_train_config

    with pytest.raises(ValueError, match="projector_captions"):
        load_train_config("lab-diva", {"projector_init": "text"})
    (tmp_path / "one.txt").write_text("a red circle\n\n")
    with pytest.raises(ValueError, match="at least two"):
        read_captions(tmp_path / "one.txt")
    config = load_train_config("lab-diva", {"projector_init": "text", "projector_captions": "c.txt"})
    assert config.projector_init == "text"
