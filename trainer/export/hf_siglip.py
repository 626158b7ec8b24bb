"""open_clip SigLIP (timm ViT + open_clip text tower) -> transformers ``SiglipModel`` tensors.

open_clip builds SigLIP from a timm ``VisionTransformer`` with a MAP (attention-pool) head and
its own ``TextTransformer`` (no causal mask, last-token pooling, a biased projection). The maps:

* timm fused ``attn.qkv`` -> ``q_proj`` / ``k_proj`` / ``v_proj``; ``pos_embed`` [1, N, D] ->
  ``position_embedding.weight`` [N, D] (SigLIP has no class token);
* the MAP head: ``latent`` -> ``head.probe``; separate ``q`` and fused ``kv`` Linear layers ->
  ``nn.MultiheadAttention``'s packed ``in_proj_weight`` (q, k, v order);
* text: open_clip's packed attention splits like CLIP's; ``text_projection`` (a Linear with bias)
  -> ``text_model.head``; ``logit_scale`` and ``logit_bias`` carry over.

Towers with features transformers' SigLIP lacks (class or register tokens, layer scale, q/k
norm, a pre-norm, an extra projection after the pool) raise :class:`HfExportError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainer.export.hf_weights import HfExportError, WeightSource

if TYPE_CHECKING:
    import torch

    from trainer.backbones.factory import ClipBundle

_TEXT_BLOCK = {
    "ln_1.": "layer_norm1.",
    "ln_2.": "layer_norm2.",
    "attn.out_proj.": "self_attn.out_proj.",
    "mlp.c_fc.": "mlp.fc1.",
    "mlp.c_proj.": "mlp.fc2.",
}
_VISION_BLOCK = {
    "norm1.": "layer_norm1.",
    "norm2.": "layer_norm2.",
    "attn.proj.": "self_attn.out_proj.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
}


def siglip_config(bundle: ClipBundle) -> Any:
    """The ``transformers.SiglipConfig`` matching the bundle's modules (read from the modules)."""
    import torch
    from transformers import SiglipConfig

    trunk = getattr(bundle.model.visual, "trunk", None)
    text = getattr(bundle.model, "text", None)
    if trunk is None or text is None or getattr(trunk, "attn_pool", None) is None:
        raise HfExportError(f"{bundle.architecture}: expected a timm ViT with a MAP head and a text tower")
    _require_plain_vit(bundle.architecture, trunk)
    if getattr(text, "pool_type", None) != "last" or getattr(text, "attn_mask", None) is not None:
        raise HfExportError(
            f"{bundle.architecture}: SigLIP text needs last-token pooling without a causal mask"
        )
    if not isinstance(text.text_projection, torch.nn.Linear):
        raise HfExportError(f"{bundle.architecture}: SigLIP text projection must be a Linear layer")
    block = trunk.blocks[0]
    text_block = text.transformer.resblocks[0]
    height, width = trunk.patch_embed.img_size
    if height != width:
        raise HfExportError(f"{bundle.architecture}: transformers SigLIP needs a square image size")
    return SiglipConfig(
        text_config={
            "vocab_size": text.vocab_size,
            "hidden_size": text.width,
            "intermediate_size": text_block.mlp.c_fc.out_features,
            "num_hidden_layers": len(text.transformer.resblocks),
            "num_attention_heads": text.heads,
            "max_position_embeddings": text.context_length,
            "hidden_act": _act_name(text_block.mlp.gelu),
            "layer_norm_eps": text.ln_final.eps,
            "projection_size": text.text_projection.out_features,
        },
        vision_config={
            "hidden_size": trunk.embed_dim,
            "intermediate_size": block.mlp.fc1.out_features,
            "num_hidden_layers": len(trunk.blocks),
            "num_attention_heads": block.attn.num_heads,
            "image_size": height,
            "patch_size": trunk.patch_embed.patch_size[0],
            "hidden_act": _act_name(block.mlp.act),
            "layer_norm_eps": trunk.norm.eps,
        },
    )


def siglip_state_dict(bundle: ClipBundle, config: Any) -> dict[str, torch.Tensor]:
    """open_clip/timm tensors -> ``SiglipModel`` key names; every source tensor used once."""
    source = {k: v.detach().to("cpu") for k, v in bundle.model.state_dict().items()}
    weights = WeightSource(bundle.architecture, source)
    take = weights.take
    out: dict[str, torch.Tensor] = {}
    v, t = "visual.trunk.", "text."
    out["vision_model.embeddings.patch_embedding.weight"] = take(f"{v}patch_embed.proj.weight")
    out["vision_model.embeddings.patch_embedding.bias"] = take(f"{v}patch_embed.proj.bias")
    out["vision_model.embeddings.position_embedding.weight"] = take(f"{v}pos_embed")[0]
    for layer in range(config.vision_config.num_hidden_layers):
        src, dst = f"{v}blocks.{layer}.", f"vision_model.encoder.layers.{layer}."
        for part in ("weight", "bias"):
            q, k, val = take(f"{src}attn.qkv.{part}").chunk(3, dim=0)
            out[f"{dst}self_attn.q_proj.{part}"], out[f"{dst}self_attn.k_proj.{part}"] = q, k
            out[f"{dst}self_attn.v_proj.{part}"] = val
            for old, new in _VISION_BLOCK.items():
                out[f"{dst}{new}{part}"] = take(f"{src}{old}{part}")
    pool, head = f"{v}attn_pool.", "vision_model.head."
    out[f"{head}probe"] = take(f"{pool}latent")
    for part in ("weight", "bias"):
        out[f"vision_model.post_layernorm.{part}"] = take(f"{v}norm.{part}")
        k, val = take(f"{pool}kv.{part}").chunk(2, dim=0)
        out[f"{head}attention.in_proj_{part}"] = _cat(take(f"{pool}q.{part}"), k, val)
        out[f"{head}attention.out_proj.{part}"] = take(f"{pool}proj.{part}")
        out[f"{head}layernorm.{part}"] = take(f"{pool}norm.{part}")
        out[f"{head}mlp.fc1.{part}"] = take(f"{pool}mlp.fc1.{part}")
        out[f"{head}mlp.fc2.{part}"] = take(f"{pool}mlp.fc2.{part}")
        out[f"text_model.final_layer_norm.{part}"] = take(f"{t}ln_final.{part}")
        out[f"text_model.head.{part}"] = take(f"{t}text_projection.{part}")
    out["text_model.embeddings.token_embedding.weight"] = take(f"{t}token_embedding.weight")
    out["text_model.embeddings.position_embedding.weight"] = take(f"{t}positional_embedding")
    for layer in range(config.text_config.num_hidden_layers):
        src, dst = f"{t}transformer.resblocks.{layer}.", f"text_model.encoder.layers.{layer}."
        for part in ("weight", "bias"):
            q, k, val = take(f"{src}attn.in_proj_{part}").chunk(3, dim=0)
            out[f"{dst}self_attn.q_proj.{part}"], out[f"{dst}self_attn.k_proj.{part}"] = q, k
            out[f"{dst}self_attn.v_proj.{part}"] = val
            for old, new in _TEXT_BLOCK.items():
                out[f"{dst}{new}{part}"] = take(f"{src}{old}{part}")
    out["logit_scale"] = take("logit_scale").reshape(1)
    out["logit_bias"] = take("logit_bias").reshape(1)
    weights.check_all_used("transformers SigLIP")
    return {k: v.clone() for k, v in out.items()}


def _require_plain_vit(arch: str, trunk: Any) -> None:
    import torch

    identity = torch.nn.Identity
    checks = {
        "class token": getattr(trunk, "cls_token", None) is None,
        "register tokens": getattr(trunk, "reg_token", None) is None,
        "pre-norm": isinstance(getattr(trunk, "norm_pre", identity()), identity),
        "fc_norm": isinstance(getattr(trunk, "fc_norm", identity()), identity),
        "classifier head": isinstance(getattr(trunk, "head", identity()), identity),
        "layer scale": all(isinstance(b.ls1, identity) and isinstance(b.ls2, identity) for b in trunk.blocks),
        "q/k norm": all(isinstance(b.attn.q_norm, identity) for b in trunk.blocks),
        "global_pool 'map'": getattr(trunk, "global_pool", None) == "map",
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise HfExportError(f"{arch}: transformers SiglipVisionModel cannot express: {', '.join(failed)}")


def _act_name(module: Any) -> str:
    import torch

    if isinstance(module, torch.nn.GELU):
        return "gelu_pytorch_tanh" if module.approximate == "tanh" else "gelu"
    raise HfExportError(f"activation {type(module).__name__} has no transformers SigLIP equivalent")


def _cat(*tensors: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.cat(tensors, dim=0)
