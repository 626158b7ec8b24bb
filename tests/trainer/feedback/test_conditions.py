"""Condition builders on small tensors: selection, projection, how the prompt is added."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from trainer.backbones.tokens import VisionTokens
from trainer.feedback.conditions import (
    ClsOnly,
    ClsPlusAll,
    ClsPlusRandom,
    ConditionBuilder,
    ConditionConfig,
    PooledPlusAvgpool,
    build_projector,
)


def _tokens() -> VisionTokens:
    pooled = torch.arange(2 * 4, dtype=torch.float32).view(2, 4)
    patches = torch.arange(2 * 12 * 4, dtype=torch.float32).view(2, 12, 4) + 100
    return VisionTokens(pooled, patches)


def _identity_builder(config, length: int = 5) -> ConditionBuilder:
    projector = torch.nn.Identity()
    prompt = torch.arange(length * 4, dtype=torch.float32).view(1, length, 4)
    return ConditionBuilder(config, projector, prompt)


def test_cls_plus_random_picks_given_patches_and_adds_prompt_tokenwise():
    builder = _identity_builder(ClsPlusRandom(n=4))
    indices = torch.tensor([[0, 0, 11, 3], [5, 6, 7, 8]])
    out = builder(_tokens(), indices)
    tokens = _tokens()
    assert torch.equal(out[0, 0], tokens.pooled[0] + builder.prompt_embeds[0, 0])
    assert torch.equal(out[0, 3], tokens.patches[0, 11] + builder.prompt_embeds[0, 3])
    assert torch.equal(out[1, 1], tokens.patches[1, 5] + builder.prompt_embeds[0, 1])


def test_mean_combination_broadcasts_the_mean_prompt_vector():
    builder = _identity_builder(ClsPlusAll())
    out = builder(_tokens())
    assert out.shape == (2, 13, 4)
    assert torch.equal(
        out[:, 1:] - _tokens().patches, builder.prompt_embeds.mean(1, keepdim=True).expand(2, 12, 4)
    )


def test_avgpool_window_and_cls_only_broadcast():
    out = _identity_builder(PooledPlusAvgpool(window=5))(_tokens())
    assert out.shape == (2, 1 + 12 // 5, 4)
    prompt_mean = _identity_builder(PooledPlusAvgpool(window=5)).prompt_embeds.mean(1)
    expected = _tokens().patches[:, 0:5].mean(1) + prompt_mean
    assert torch.allclose(out[:, 1], expected)
    only = _identity_builder(ClsOnly())(_tokens())
    assert only.shape == (2, 5, 4)
    assert torch.equal(only[:, 2] - torch.arange(8, 12.0), _tokens().pooled)


def test_cls_only_can_normalise_and_centre_the_global_token():
    prompt = _identity_builder(ClsOnly()).prompt_embeds
    normal = _identity_builder(ClsOnly(normalize=True))(_tokens()) - prompt
    assert torch.allclose(normal.norm(dim=-1), torch.full((2, 5), 2.0))  # sqrt(width 4)
    pooled = _tokens().pooled.clone().requires_grad_(True)
    centred = _identity_builder(ClsOnly(center=True))(VisionTokens(pooled, _tokens().patches)) - prompt
    assert torch.allclose(centred[:, 0].sum(0), torch.zeros(4))
    weights = torch.randn(4)
    (centred[:, 0] @ weights).pow(2).sum().backward()
    assert torch.allclose(pooled.grad.sum(0), torch.zeros(4), atol=1e-5), "no batch-common gradient"


def test_tokenwise_length_mismatch_is_a_clear_error():
    builder = _identity_builder(ClsPlusRandom(n=76), length=77)
    assert builder.check_shapes(256) == 77
    with pytest.raises(ValueError, match="token-wise addition needs equal lengths"):
        _identity_builder(ClsPlusRandom(n=10), length=77).check_shapes(256)


def test_projectors_and_config_union():
    assert build_projector("linear", 8, 16)(torch.zeros(1, 3, 8)).shape == (1, 3, 16)
    assert build_projector("mlp", 8, 16)(torch.zeros(1, 3, 8)).shape == (1, 3, 16)
    with pytest.raises(ValueError, match="unknown projector"):
        build_projector("conv", 8, 16)
    adapter = TypeAdapter(ConditionConfig)
    assert adapter.validate_python({"kind": "pooled_plus_avgpool", "window": 10}).window == 10
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "cls_plus_random", "n": 76, "typo": 1})
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "nope"})


def test_identity_projector_starts_as_the_identity_and_still_trains():
    x = torch.randn(2, 3, 8)
    layer = build_projector("linear", 8, 8, "identity")
    assert torch.equal(layer(x), x)
    assert all(p.requires_grad for p in layer.parameters())
    with pytest.raises(ValueError, match="equal widths"):
        build_projector("linear", 8, 16, "identity")
    with pytest.raises(ValueError, match="equal widths"):
        build_projector("mlp", 8, 8, "identity")
    with pytest.raises(ValueError, match="unknown projector init"):
        build_projector("linear", 8, 8, "orthogonal")


def test_cls_plus_random_needs_a_count():
    with pytest.raises(ValidationError, match="needs n"):
        ClsPlusRandom(n=None)
