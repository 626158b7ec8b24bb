"""Token access through public APIs, and condition shapes at real sizes per backbone family."""

from __future__ import annotations

import open_clip
import pytest
import torch

from trainer.backbones import create_clip
from trainer.backbones.tokens import TokenTower
from trainer.feedback.conditions import (
    ClsOnly,
    ClsPlusAll,
    ClsPlusRandom,
    ConditionBuilder,
    PooledPlusAvgpool,
    build_projector,
    random_count,
)


def test_tokens_match_open_clip_pooled_and_output_tokens():
    torch.manual_seed(0)
    bundle = create_clip("diva-tiny-vit")
    tower = TokenTower(bundle.model.visual)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = tower(pixels)
        assert torch.allclose(tokens.pooled, bundle.model.encode_image(pixels), atol=1e-6)
        # Same numbers as open_clip's own output_tokens path, projected into the joint space.
        visual = create_clip("diva-tiny-vit").model.visual
        visual.load_state_dict(bundle.model.visual.state_dict())
        visual.output_tokens = True
        _, raw = visual(pixels)
        assert torch.allclose(tokens.patches, raw @ visual.proj, atol=1e-6)
    assert tokens.patches.shape == (2, 16, 32)
    assert tower.embed_dim == 32 and tower.num_patches(32) == 16


# (architecture, open_clip kwargs, image size, condition, patches, condition tokens) from METHOD.md.
REAL_SIZES = [
    ("ViT-L-14", {}, 224, ClsPlusRandom(n=76), 256, 77),
    ("ViT-L-14", {"force_image_size": 336}, 336, ClsPlusRandom(n=76), 576, 77),
    ("ViT-L-14-quickgelu", {}, 224, ClsPlusAll(), 256, 257),  # MetaCLIP L/14
    ("ViT-H-14-quickgelu", {}, 224, ClsPlusAll(), 256, 257),  # MetaCLIP / DFN H/14
    ("ViT-H-14-378-quickgelu", {}, 378, ClsPlusRandom(fraction=0.5, n=None, combine="mean"), 729, 365),
    ("ViT-SO400M-14-SigLIP", {}, 224, PooledPlusAvgpool(window=6), 256, 43),
    ("ViT-SO400M-14-SigLIP-384", {}, 384, PooledPlusAvgpool(window=10), 729, 73),
    ("ViT-L-14", {}, 224, ClsOnly(), 256, 77),
]


@pytest.mark.parametrize(("name", "kwargs", "size", "condition", "patches", "length"), REAL_SIZES)
def test_condition_shapes_at_real_sizes(name, kwargs, size, condition, patches, length):
    """Real architectures, real code path, on the meta device (shapes only, no memory, no time)."""
    with torch.device("meta"):
        model = open_clip.create_model(name, device="meta", **kwargs)
        tower = TokenTower(model.visual)
        prompt = torch.zeros(1, 77, 1024)  # SD-2.1's 77 x 1024 prompt embedding
        builder = ConditionBuilder(condition, build_projector("linear", tower.embed_dim, 1024), prompt)
    assert tower.num_patches(size) == patches
    assert builder.check_shapes(patches) == length
    tokens = tower(torch.empty(2, 3, size, size, device="meta"))
    assert tokens.patches.shape == (2, patches, tower.embed_dim)
    indices = torch.randint(0, patches, (2, random_count(condition, patches))).to("meta")
    out = builder(tokens, indices)
    assert out.shape == (2, length, 1024)


@pytest.mark.parametrize("proj", ["none", "linear"])
def test_timm_tower_tokens_match_its_own_forward(proj):
    """SigLIP-style timm tower (MAP pooling): pooled == the tower's output; patches share its head."""
    from open_clip.timm_model import TimmModel

    with torch.device("meta"):  # skip timm's slow CPU init; random normal weights are enough here
        visual = TimmModel("vit_base_patch32_siglip_256", embed_dim=64, image_size=256, pool="map", proj=proj)
    visual = visual.to_empty(device="cpu").eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in [*visual.parameters(), *visual.buffers()]:
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.02)
    tower = TokenTower(visual)
    pixels = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        tokens = tower(pixels)
        assert torch.allclose(tokens.pooled, visual(pixels), atol=1e-5)
        trunk_tokens = visual.trunk.forward_features(pixels)  # final-normed patch tokens
    expected = trunk_tokens if proj == "none" else visual.head(trunk_tokens)
    assert torch.allclose(tokens.patches, expected, atol=1e-5)
    assert tokens.patches.shape == (1, 64, tower.embed_dim) and tower.num_patches(256) == 64
    assert tower.embed_dim == (768 if proj == "none" else 64)
