"""open_clip -> Hugging Face ``CLIPModel`` / ``CLIPVisionModelWithProjection`` folder.

What MLLM code loads (LLaVA's ``mm_vision_tower`` is such a folder): ``config.json``,
``model.safetensors`` with transformers' key names, ``preprocessor_config.json``
(``CLIPImageProcessor``) and tokenizer files. The conversion is pure tensor bookkeeping, written
here rather than borrowed because transformers only ships the opposite direction:

* the fused ``attn.in_proj_weight`` / ``in_proj_bias`` split into ``q_proj`` / ``k_proj`` /
  ``v_proj`` (same order: open_clip's MultiheadAttention packs q, k, v);
* renames (``ln_pre`` -> ``pre_layrnorm`` (sic), ``ln_1`` -> ``layer_norm1``, ``c_fc`` -> ``fc1``...);
* the projections ``visual.proj`` / ``text_projection`` ([in, out] matrices used as ``x @ P``)
  transposed into ``nn.Linear`` weights ([out, in]).

Only architectures whose maths transformers reproduces exactly are converted: OpenAI, MetaCLIP,
DFN, LAION-style ViTs (class-token pooling, learnable positions, plain pre-norm blocks, argmax or
eos text pooling, GELU or QuickGELU) to ``CLIPModel``, and open_clip's SigLIP (timm ViT with a MAP
head) to ``SiglipModel`` (:mod:`trainer.export.hf_siglip`). Anything else (other timm or HF
towers, attentional pooling, layer scale, cosine attention, a text projection bias on a CLIP)
raises :class:`HfExportError` naming the feature, instead of writing a folder that loads and
computes something else.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.export.hf_weights import HfExportError, WeightSource

if TYPE_CHECKING:
    import torch

    from trainer.backbones.factory import ClipBundle

# vision/text config fields whose non-default values change the maths in ways HF CLIP lacks
_VISION_FIXED = (
    "ls_init_value", "attentional_pool", "no_ln_pre", "pos_embed_type", "final_ln_after_pool",
    "pool_type", "block_type", "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner",
    "scale_attn", "scale_fc", "timm_model_name", "norm_kwargs", "act_kwargs",
)  # fmt: skip
_TEXT_FIXED = (
    "ls_init_value", "embed_cls", "no_causal_mask", "final_ln_after_pool", "proj_bias", "proj_type",
    "block_type", "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn",
    "scale_fc", "hf_model_name", "norm_kwargs", "act_kwargs",
)  # fmt: skip
_BLOCK_RENAMES = {
    "ln_1.": "layer_norm1.",
    "ln_2.": "layer_norm2.",
    "attn.out_proj.": "self_attn.out_proj.",
    "mlp.c_fc.": "mlp.fc1.",
    "mlp.c_proj.": "mlp.fc2.",
}
_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1}
CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"


def export_hf(bundle: ClipBundle, out_dir: Path | str, *, vision_only: bool = False) -> Path:
    """Write a transformers folder for ``bundle`` into ``out_dir`` and return it.

    ``vision_only`` writes a ``CLIPVisionModelWithProjection`` (loads as ``CLIPVisionModel`` too,
    which is what LLaVA builds); otherwise a full ``CLIPModel`` with tokenizer files. SigLIP towers
    (see :func:`is_siglip`) become ``SiglipModel`` / ``SiglipVisionModel`` the same way.
    """
    from safetensors.torch import save_file

    if is_siglip(bundle):
        from trainer.export.hf_siglip import siglip_config, siglip_state_dict

        config = siglip_config(bundle)
        tensors = siglip_state_dict(bundle, config)
        names = ("SiglipModel", "SiglipVisionModel")
    else:
        config = hf_config(bundle)
        tensors = convert_state_dict(bundle, config)
        names = ("CLIPModel", "CLIPVisionModelWithProjection")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if vision_only and names[0] == "SiglipModel":
        vision = config.vision_config
        vision.architectures = [names[1]]
        tensors = {k: v for k, v in tensors.items() if k.startswith("vision_model.")}
        _check_keys(tensors, names[1], vision)
        vision.save_pretrained(str(out))
    elif vision_only:
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        vision.architectures = ["CLIPVisionModelWithProjection"]
        tensors = {k: v for k, v in tensors.items() if k.startswith(("vision_model.", "visual_projection."))}
        _check_keys(tensors, "CLIPVisionModelWithProjection", vision)
        vision.save_pretrained(str(out))
    else:
        config.architectures = [names[0]]
        _check_keys(tensors, names[0], config)
        config.save_pretrained(str(out))
        write_tokenizer(bundle, out)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"), {"format": "pt"}
    )
    image_processor(bundle).save_pretrained(str(out))
    if not vision_only and names[0] == "CLIPModel":
        name_generic_processor(out)
    return out


def hf_text_encoder(bundle: ClipBundle) -> Any:
    """The bundle's text tower as a ``CLIPTextModelWithProjection`` (eval mode, same maths).

    What a diffusion model conditioned on this CLIP's text tower keeps in its ``text_encoder/``
    folder (SD-2.1 keeps OpenCLIP-H's text tower the same way).
    """
    from transformers import CLIPTextModelWithProjection

    config = hf_config(bundle)
    tensors = convert_state_dict(bundle, config)
    text = config.text_config
    text.projection_dim = config.projection_dim
    text.architectures = ["CLIPTextModelWithProjection"]
    tensors = {k: v for k, v in tensors.items() if k.startswith(("text_model.", "text_projection."))}
    _check_keys(tensors, "CLIPTextModelWithProjection", text)
    model = CLIPTextModelWithProjection(text)
    model.load_state_dict(tensors, strict=False)  # strict=False: position_ids is a buffer
    return model.eval()


def is_siglip(bundle: ClipBundle) -> bool:
    """A sigmoid-loss tower (logit bias) with a timm SigLIP ViT: goes to ``SiglipModel``."""
    vision = bundle.model_cfg.get("vision_cfg", {})
    return "init_logit_bias" in bundle.model_cfg and "siglip" in str(vision.get("timm_model_name", ""))


def hf_config(bundle: ClipBundle) -> Any:
    """The ``transformers.CLIPConfig`` equivalent to the bundle's open_clip config."""
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg
    from transformers import CLIPConfig

    cfg = bundle.model_cfg
    vision = CLIPVisionCfg(**cfg.get("vision_cfg", {}))
    text = CLIPTextCfg(**cfg.get("text_cfg", {}))
    _require_defaults(bundle.architecture, "vision_cfg", vision, _VISION_FIXED)
    _require_defaults(bundle.architecture, "text_cfg", text, _TEXT_FIXED)
    if text.pool_type not in ("argmax", "eos"):
        raise HfExportError(
            f"{bundle.architecture}: text pool_type {text.pool_type!r} has no transformers CLIP "
            "equivalent (argmax or eos only)"
        )
    if isinstance(vision.image_size, (tuple, list)) and vision.image_size[0] != vision.image_size[1]:
        raise HfExportError(f"{bundle.architecture}: transformers CLIP needs a square image size")
    act = "quick_gelu" if cfg.get("quick_gelu") else "gelu"
    image_size = vision.image_size if isinstance(vision.image_size, int) else vision.image_size[0]
    return CLIPConfig(
        projection_dim=bundle.embed_dim,
        logit_scale_init_value=float(bundle.model.logit_scale.detach().item()),
        text_config={
            "vocab_size": text.vocab_size,
            "hidden_size": text.width,
            "intermediate_size": int(text.width * text.mlp_ratio),
            "num_hidden_layers": text.layers,
            "num_attention_heads": text.heads,
            "max_position_embeddings": text.context_length,
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
            "projection_dim": bundle.embed_dim,
            **_text_special_ids(bundle, text),
        },
        vision_config={
            "hidden_size": vision.width,
            "intermediate_size": int(vision.width * vision.mlp_ratio),
            "num_hidden_layers": vision.layers,
            "num_attention_heads": vision.width // vision.head_width,
            "image_size": image_size,
            "patch_size": vision.patch_size,
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
            "projection_dim": bundle.embed_dim,
        },
    )


def convert_state_dict(bundle: ClipBundle, config: Any) -> dict[str, torch.Tensor]:
    """open_clip tensors -> transformers key names; every source tensor must be used exactly once."""
    source = {k: v.detach().to("cpu") for k, v in bundle.model.state_dict().items() if k != "attn_mask"}
    text_prefix = "text." if any(k.startswith("text.") for k in source) else ""
    weights = WeightSource(bundle.architecture, source)
    take = weights.take
    out: dict[str, torch.Tensor] = {}
    out["vision_model.embeddings.class_embedding"] = take("visual.class_embedding")
    out["vision_model.embeddings.patch_embedding.weight"] = take("visual.conv1.weight")
    out["vision_model.embeddings.position_embedding.weight"] = take("visual.positional_embedding")
    for part in ("weight", "bias"):
        out[f"vision_model.pre_layrnorm.{part}"] = take(f"visual.ln_pre.{part}")
        out[f"vision_model.post_layernorm.{part}"] = take(f"visual.ln_post.{part}")
        out[f"text_model.final_layer_norm.{part}"] = take(f"{text_prefix}ln_final.{part}")
    out["visual_projection.weight"] = take("visual.proj").t()
    out["text_model.embeddings.token_embedding.weight"] = take(f"{text_prefix}token_embedding.weight")
    out["text_model.embeddings.position_embedding.weight"] = take(f"{text_prefix}positional_embedding")
    out["text_projection.weight"] = take(f"{text_prefix}text_projection").t()
    out["logit_scale"] = take("logit_scale")
    towers = (
        ("visual.transformer.resblocks", "vision_model.encoder.layers", config.vision_config),
        (f"{text_prefix}transformer.resblocks", "text_model.encoder.layers", config.text_config),
    )
    for src_prefix, dst_prefix, tower in towers:
        for layer in range(tower.num_hidden_layers):
            src, dst = f"{src_prefix}.{layer}.", f"{dst_prefix}.{layer}."
            for part in ("weight", "bias"):
                q, k, v = take(f"{src}attn.in_proj_{part}").chunk(3, dim=0)
                out[f"{dst}self_attn.q_proj.{part}"] = q
                out[f"{dst}self_attn.k_proj.{part}"] = k
                out[f"{dst}self_attn.v_proj.{part}"] = v
                for old, new in _BLOCK_RENAMES.items():
                    out[f"{dst}{new}{part}"] = take(f"{src}{old}{part}")
    weights.check_all_used("transformers CLIP")
    return {k: v.clone() for k, v in out.items()}


def image_processor(bundle: ClipBundle) -> Any:
    """A ``CLIPImageProcessor`` doing open_clip's eval transform (resize, centre crop, normalise)."""
    from transformers import CLIPImageProcessor

    cfg = bundle.preprocess_cfg
    size = bundle.image_size
    interpolation = cfg.get("interpolation", "bicubic")
    if interpolation not in _RESAMPLE:
        raise HfExportError(f"interpolation {interpolation!r} has no PIL resample equivalent")
    mode = cfg.get("resize_mode", "shortest")
    if mode == "shortest":
        resize: dict[str, Any] = {"size": {"shortest_edge": size}, "do_center_crop": True}
    elif mode == "squash":
        resize = {"size": {"height": size, "width": size}, "do_center_crop": False}
    else:
        raise HfExportError(
            f"resize_mode {mode!r} (letterbox padding) is not available in CLIPImageProcessor"
        )
    return CLIPImageProcessor(
        do_resize=True,
        resample=_RESAMPLE[interpolation],
        crop_size={"height": size, "width": size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(bundle.mean),
        image_std=list(bundle.std),
        do_convert_rgb=True,
        **resize,
    )


def write_tokenizer(bundle: ClipBundle, out_dir: Path) -> None:
    """Tokenizer files: the model's own HF tokenizer, or CLIP BPE built from open_clip's vocab."""
    inner = getattr(bundle.tokenizer, "tokenizer", None)
    if inner is not None and hasattr(inner, "save_pretrained"):
        inner.model_max_length = bundle.context_length
        inner.save_pretrained(str(out_dir))
        return
    from transformers import CLIPTokenizer

    vocab_file, merges_file = _write_clip_bpe(out_dir)
    tokenizer = CLIPTokenizer(
        str(vocab_file),
        str(merges_file),
        pad_token="!",  # id 0: open_clip pads with zeros, so token ids match it exactly
        model_max_length=bundle.context_length,
    )
    tokenizer.save_pretrained(str(out_dir))


def name_generic_processor(out_dir: Path) -> None:
    """Name ``VisionTextDualEncoderProcessor`` in ``preprocessor_config.json`` when the tokenizer
    is not CLIP's BPE.

    Why: ``AutoProcessor`` picks ``CLIPProcessor`` for ``model_type: clip``, and that one only
    builds ``CLIPTokenizer(Fast)``, which needs a BPE model: a folder carrying another tokenizer
    (the lab models' 67-word one, an open_clip HF tokenizer) then fails to load in every tool that
    goes through ``AutoProcessor`` (infinity's CLIP path does). The dual-encoder processor is
    transformers' own pairing of ``AutoImageProcessor`` and ``AutoTokenizer``: the same image
    processor and the same tokenizer, so what it computes is unchanged.
    """
    tokenizer_class = json.loads((out_dir / "tokenizer_config.json").read_text()).get("tokenizer_class")
    if tokenizer_class in ("CLIPTokenizer", "CLIPTokenizerFast"):
        return
    path = out_dir / "preprocessor_config.json"
    config = json.loads(path.read_text())
    config["processor_class"] = "VisionTextDualEncoderProcessor"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _write_clip_bpe(out_dir: Path) -> tuple[Path, Path]:
    """``vocab.json`` + ``merges.txt`` from ``bpe_simple_vocab_16e6.txt.gz`` (OpenAI's ordering)."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [CLIP_BOS, CLIP_EOS]
    vocab_file, merges_file = out_dir / "vocab.json", out_dir / "merges.txt"
    vocab_file.write_text(json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False))
    merges_file.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return vocab_file, merges_file


def _text_special_ids(bundle: ClipBundle, text: Any) -> dict[str, int]:
    """Ids that make transformers pool where open_clip pools.

    transformers pools at the first ``eos_token_id`` (or at the argmax id when it is 2, its legacy
    rule); open_clip's ``argmax`` pooling equals "first eos" for CLIP BPE (eos is the largest id).
    """
    if text.pool_type == "eos":
        return {"eos_token_id": int(text.eos_id), "pad_token_id": int(text.pad_id), "bos_token_id": 2}
    if text.vocab_size == 49408:
        return {"eos_token_id": 49407, "bos_token_id": 49406, "pad_token_id": int(text.pad_id)}
    return {"eos_token_id": 2, "pad_token_id": int(text.pad_id)}


def _require_defaults(arch: str, section: str, cfg: Any, fields: tuple[str, ...]) -> None:
    defaults = type(cfg)()
    for name in fields:
        value, default = getattr(cfg, name), getattr(defaults, name)
        if value != default and not (not value and not default):
            raise HfExportError(
                f"{arch}: {section}.{name}={value!r} has no transformers CLIP equivalent "
                "(only OpenAI/MetaCLIP/DFN-style ViTs convert)"
            )


def _check_keys(tensors: dict[str, torch.Tensor], class_name: str, config: Any) -> None:
    """Same key set and shapes as the transformers class (built on the meta device: no memory)."""
    import torch
    import transformers

    with torch.device("meta"):
        model = getattr(transformers, class_name)(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        shapes = [k for k in set(expected) & set(got) if expected[k] != got[k]][:5]
        raise HfExportError(f"{class_name} key mismatch: missing {missing}, extra {extra}, shape {shapes}")
