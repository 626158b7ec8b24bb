"""Hugging Face export: transformers loads the folder and computes what open_clip computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.export.hf import HfExportError, export_hf

TEXTS = ["a photo of a cat", "two red dogs under the tree", "x", ""]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bundle) -> Path:
    return export_hf(tiny_bundle, tmp_path_factory.mktemp("hf"))


def _pixels(bundle, n: int = 5) -> torch.Tensor:
    return torch.randn(n, 3, bundle.image_size, bundle.image_size, generator=torch.Generator().manual_seed(1))


def test_folder_layout(hf_dir: Path) -> None:
    names = {p.name for p in hf_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "vocab.json",
        "merges.txt",
    } <= names


def test_clip_model_matches_open_clip(hf_dir: Path, tiny_bundle) -> None:
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(str(hf_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    ids = tiny_bundle.tokenizer(TEXTS)
    hf_ids = tokenizer(
        TEXTS,
        padding="max_length",
        max_length=tiny_bundle.context_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    assert torch.equal(ids, hf_ids)
    pixels = _pixels(tiny_bundle)
    with torch.no_grad():
        image_diff = (
            model.get_image_features(pixel_values=pixels) - tiny_bundle.model.encode_image(pixels)
        ).abs()
        text_diff = (model.get_text_features(input_ids=ids) - tiny_bundle.model.encode_text(ids)).abs()
        assert model.logit_scale.item() == pytest.approx(tiny_bundle.model.logit_scale.item())
    assert image_diff.max() <= 1e-4 and text_diff.max() <= 1e-4


def test_vision_model_loads_for_llava(hf_dir: Path, tmp_path: Path, tiny_bundle) -> None:
    """LLaVA builds CLIPVisionModel and reads hidden_states[-2]; both folders must load into it."""
    from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

    vision_dir = export_hf(tiny_bundle, tmp_path / "vision", vision_only=True)
    assert not (vision_dir / "vocab.json").exists()
    pixels = _pixels(tiny_bundle, 3)
    with torch.no_grad():
        expected = tiny_bundle.model.encode_image(pixels)
        projected = CLIPVisionModelWithProjection.from_pretrained(str(vision_dir)).eval()
        assert (projected(pixel_values=pixels).image_embeds - expected).abs().max() <= 1e-4
        for folder in (hf_dir, vision_dir):
            tower = CLIPVisionModel.from_pretrained(str(folder)).eval()
            out = tower(pixel_values=pixels, output_hidden_states=True)
            pooled = out.pooler_output @ tiny_bundle.model.visual.proj
            assert (pooled - expected).abs().max() <= 1e-4
            # CLS + (32 / 8)^2 patch tokens at the feature layer LLaVA uses
            assert out.hidden_states[-2].shape == (3, 1 + 16, 64)


def test_image_processor_reproduces_open_clip(hf_dir: Path, tiny_bundle) -> None:
    from PIL import Image
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor.from_pretrained(str(hf_dir))
    rng = np.random.default_rng(0)
    # sizes whose centre-crop offset both libraries round alike (see docs/llava.md for the rest)
    for width, height in [(32, 32), (48, 40), (40, 48), (100, 33), (31, 70), (640, 480)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        expected = tiny_bundle.preprocess(image).numpy()
        got = processor(images=image, return_tensors="np").pixel_values[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-5, (width, height)


def test_eos_pooled_text_tower(tmp_path: Path) -> None:
    """Towers pooling at an eos id (the lab's) map to transformers' first-eos rule."""
    import open_clip
    from transformers import CLIPModel

    from trainer.backbones.factory import ClipBundle, eval_transform

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {
            "context_length": 8,
            "vocab_size": 50,
            "width": 32,
            "heads": 2,
            "layers": 1,
            "pool_type": "eos",
            "eos_id": 3,
            "pad_id": 0,
        },
        "quick_gelu": True,
    }
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg).eval()
    preprocess_cfg = {"size": 16, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    tokenizer = open_clip.SimpleTokenizer(context_length=8)
    bundle = ClipBundle(model, eval_transform(preprocess_cfg), tokenizer, "eos-test", cfg, preprocess_cfg)
    hf = CLIPModel.from_pretrained(str(export_hf(bundle, tmp_path))).eval()
    assert hf.config.text_config.hidden_act == "quick_gelu"
    ids = torch.tensor([[2, 10, 11, 3, 0, 0, 0, 0], [2, 40, 3, 0, 0, 0, 0, 0], [2, 3, 20, 3, 0, 0, 0, 0]])
    with torch.no_grad():
        assert (hf.get_text_features(input_ids=ids) - model.encode_text(ids)).abs().max() <= 1e-5


def test_unsupported_architecture_is_named(tmp_path: Path, tiny_bundle) -> None:
    from dataclasses import replace

    vision_cfg = {**tiny_bundle.model_cfg["vision_cfg"], "ls_init_value": 1e-5}
    layer_scaled = replace(tiny_bundle, model_cfg={**tiny_bundle.model_cfg, "vision_cfg": vision_cfg})
    with pytest.raises(HfExportError, match="ls_init_value"):
        export_hf(layer_scaled, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


@pytest.mark.slow
def test_vit_l_14_random_weights(tmp_path: Path) -> None:
    """Real size (304M-parameter tower): the split/transposes hold beyond toy widths."""
    from transformers import CLIPModel

    from trainer.backbones.factory import create_clip

    torch.manual_seed(0)
    bundle = create_clip("ViT-L-14")
    model = CLIPModel.from_pretrained(str(export_hf(bundle, tmp_path))).eval()
    pixels = _pixels(bundle, 2)
    ids = bundle.tokenizer(TEXTS[:2])
    with torch.no_grad():
        assert (
            model.get_image_features(pixel_values=pixels) - bundle.model.encode_image(pixels)
        ).abs().max() <= 1e-4
        assert (model.get_text_features(input_ids=ids) - bundle.model.encode_text(ids)).abs().max() <= 1e-4


def test_lab_clip_with_word_tokenizer(tmp_path: Path) -> None:
    """The built-in lab towers: eos pooling, a 67-word HF tokenizer carried into the export."""
    from transformers import AutoTokenizer, CLIPModel

    from trainer.lab.clip_pretrain import ClipPretrainConfig, new_lab_clip

    bundle = new_lab_clip(ClipPretrainConfig(), tmp_path / "open_clip", seed=0)
    out = export_hf(bundle, tmp_path / "hf")
    model = CLIPModel.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    texts = ["a red circle", "two blue triangles pointing left"]
    ids = bundle.tokenizer(texts)
    hf_ids = tokenizer(
        texts, padding="max_length", max_length=bundle.context_length, return_tensors="pt"
    ).input_ids
    assert torch.equal(ids, hf_ids)
    pixels = _pixels(bundle, 2)
    with torch.no_grad():
        assert (model.get_text_features(input_ids=ids) - bundle.model.encode_text(ids)).abs().max() <= 1e-4
        assert (
            model.get_image_features(pixel_values=pixels) - bundle.model.encode_image(pixels)
        ).abs().max() <= 1e-4


@pytest.mark.slow
def test_siglip_to_siglip_model(tmp_path: Path) -> None:
    """timm SigLIP ViT-B/16 (MAP head) + a small text tower -> SiglipModel / SiglipVisionModel."""
    import open_clip
    from transformers import SiglipModel, SiglipVisionModel

    from trainer.backbones.factory import ClipBundle, eval_transform

    vision_cfg = {
        "image_size": 224,
        "timm_model_name": "vit_base_patch16_siglip_224",
        "timm_model_pretrained": False,
        "timm_pool": "map",
        "timm_proj": "none",
    }
    text_cfg = {
        "context_length": 16,
        "vocab_size": 1000,
        "width": 64,
        "heads": 2,
        "layers": 1,
        "no_causal_mask": True,
        "proj_bias": True,
        "pool_type": "last",
        "norm_kwargs": {"eps": 1e-6},
    }
    cfg = {
        "embed_dim": 768,
        "init_logit_bias": -10.0,
        "custom_text": True,
        "vision_cfg": vision_cfg,
        "text_cfg": text_cfg,
    }
    torch.manual_seed(0)
    model = open_clip.CustomTextCLIP(768, vision_cfg, text_cfg, init_logit_bias=-10.0).eval()
    preprocess_cfg = {"size": 224, "mean": (0.5,) * 3, "std": (0.5,) * 3, "resize_mode": "squash"}
    tokenizer = open_clip.SimpleTokenizer(context_length=16)
    bundle = ClipBundle(model, eval_transform(preprocess_cfg), tokenizer, "siglip-test", cfg, preprocess_cfg)
    out = export_hf(bundle, tmp_path)
    pixels = _pixels(bundle, 2)
    ids = torch.randint(0, 1000, (3, 16), generator=torch.Generator().manual_seed(0))
    siglip = SiglipModel.from_pretrained(str(out)).eval()
    vision = SiglipVisionModel.from_pretrained(str(out)).eval()
    with torch.no_grad():
        expected = model.encode_image(pixels)
        assert (siglip.get_image_features(pixel_values=pixels) - expected).abs().max() <= 1e-4
        assert (vision(pixel_values=pixels).pooler_output - expected).abs().max() <= 1e-4
        assert (siglip.get_text_features(input_ids=ids) - model.encode_text(ids)).abs().max() <= 1e-4
    assert siglip.logit_bias.item() == pytest.approx(-10.0)


def test_a_missing_or_unconverted_weight_is_an_error() -> None:
    from trainer.export.hf import WeightSource

    weights = WeightSource("arch", {"a": torch.zeros(1), "b": torch.ones(1)})
    assert torch.equal(weights.take("b"), torch.ones(1))
    with pytest.raises(HfExportError, match="arch: expected weight 'c' is missing"):
        weights.take("c")
    with pytest.raises(HfExportError, match=r"arch: weights with no transformers CLIP counterpart: a$"):
        weights.check_all_used("transformers CLIP")
    weights.take("a")
    weights.check_all_used("transformers CLIP")


def test_text_encoder_matches_open_clip_text_tower(tmp_path):
    """hf_text_encoder: CLIPTextModelWithProjection with open_clip's text embedding and tokens."""
    import torch

    from trainer.export.hf import hf_text_encoder
    from trainer.lab.clip_pretrain import ClipPretrainConfig, new_lab_clip

    bundle = new_lab_clip(ClipPretrainConfig(), tmp_path / "clip", seed=0)
    encoder = hf_text_encoder(bundle)
    ids = bundle.tokenizer(["a photo of a red arrow pointing left", "two blue stars"])
    with torch.no_grad():
        ours = encoder(ids)
        theirs = bundle.model.encode_text(ids)
    assert torch.allclose(ours.text_embeds, theirs, atol=1e-5)
    assert ours.last_hidden_state.shape == (2, 36, bundle.model_cfg["text_cfg"]["width"])
