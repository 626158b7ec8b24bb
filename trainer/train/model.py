"""Assemble what one run trains (tower + projector) and what stays frozen (diffusion, text tower)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.backbones.factory import ClipBundle, create_clip
from trainer.backbones.tokens import TokenTower
from trainer.feedback.conditions import ConditionBuilder, build_projector, random_count
from trainer.feedback.diffusion import FrozenDiffusion
from trainer.recipes.schema import LoraConfig, TrainConfig
from trainer.train.anchor import BaseAnchor, build_anchor

log = logging.getLogger(__name__)


class Student(nn.Module):
    """The trainable part: a vision tower with token access and the condition builder.

    ``anchor`` (optional) scores how far the tower's embeddings moved from the base tower's
    (:mod:`trainer.train.anchor`); it owns no trainable parameters.
    """

    def __init__(
        self, tower: nn.Module, condition: ConditionBuilder, anchor: BaseAnchor | None = None
    ) -> None:
        super().__init__()
        self.tower = tower
        self.condition = condition
        self.anchor = anchor

    def forward(
        self,
        pixels: torch.Tensor,
        indices: torch.Tensor | None = None,
        *,
        train_tower: bool = True,
        with_anchor: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The condition; with ``with_anchor`` also the anchor loss of these pixels."""
        with torch.set_grad_enabled(train_tower and torch.is_grad_enabled()):
            tokens = self.tower(pixels)
        condition = self.condition(tokens, indices)
        if not with_anchor:
            return condition
        if self.anchor is None:
            raise ValueError("with_anchor needs an anchor term: loss.anchor_weight or a zeroshot weight > 0")
        return condition, self.anchor(tokens.pooled, pixels)


class TowerInput(nn.Module):
    """The crop (pixels in [0, 1]) resized to the tower's size and normalised with *its* mean/std."""

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels01: torch.Tensor) -> torch.Tensor:
        x = pixels01
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bicubic", antialias=True, align_corners=False
            )
            x = x.clamp(0.0, 1.0)
        return (x - self.mean) / self.std


@dataclass
class FeedbackSetup:
    """Everything a step needs, built once per run."""

    bundle: ClipBundle
    student: Student
    feedback: FrozenDiffusion
    tower_input: TowerInput
    num_patches: int
    random_patches: int
    condition_length: int
    latent_shape: tuple[int, int, int]

    def parameter_counts(self) -> dict[str, int]:
        """Trainable and frozen parameter counts, by part (what ``--dry-run`` prints)."""
        trainable = sum(p.numel() for p in self.student.parameters() if p.requires_grad)
        student_frozen = sum(p.numel() for p in self.student.parameters() if not p.requires_grad)
        visual_ids = {id(p) for p in self.bundle.model.visual.parameters()}
        text = sum(p.numel() for p in self.bundle.model.parameters() if id(p) not in visual_ids)
        unet = sum(p.numel() for p in self.feedback.unet.parameters())
        vae = sum(p.numel() for p in self.feedback.vae.parameters()) if self.feedback.vae is not None else 0
        return {
            "trainable": trainable,
            "frozen_tower": student_frozen,
            "frozen_clip_text": text,
            "frozen_unet": unet,
            "frozen_vae": vae,
            "frozen": student_frozen + text + unet + vae,
        }


def lora_targets(tower: nn.Module) -> list[str]:
    """Every linear layer of the tower (and fused attention blocks) that LoRA can wrap."""
    names = []
    for name, module in tower.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            names.append(name)
        elif isinstance(module, nn.Linear) and not name.endswith("attn.out_proj"):
            names.append(name)  # MHA's out_proj is used through the MHA functional path
    return names


def apply_lora(tower: nn.Module, config: LoraConfig) -> nn.Module:
    """Wrap the tower's linear layers with LoRA adapters (only they train); merge with :func:`merge_lora`."""
    import peft

    lora = peft.LoraConfig(
        r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=lora_targets(tower)
    )
    return peft.get_peft_model(tower, lora)


def merge_lora(student: Student) -> None:
    """Fold LoRA weights into the tower in place (the wrapped CLIP then saves as a plain CLIP)."""
    import peft

    if isinstance(student.tower, peft.PeftModel):
        student.tower = student.tower.merge_and_unload()


def build_setup(config: TrainConfig, device: torch.device, frozen_dtype: torch.dtype) -> FeedbackSetup:
    """Load the CLIP and the diffusion folder, freeze all but the tower and the new projector."""
    extra = {"force_image_size": config.force_image_size} if config.force_image_size else {}
    bundle = create_clip(config.model, config.pretrained, device="cpu", **extra)
    feedback = FrozenDiffusion.load(config.diffusion, device=device, dtype=frozen_dtype, prompt=config.prompt)
    bundle.model.requires_grad_(False)
    visual = bundle.model.visual.to(device)
    if config.grad_checkpointing:
        visual.set_grad_checkpointing(True)
    tower: nn.Module = TokenTower(visual)
    num_patches = tower.num_patches(bundle.image_size)
    anchor = build_anchor(bundle, tower, config.loss, device)  # copies the tower before any change
    if config.lora is not None:
        tower = apply_lora(tower, config.lora)
    else:
        visual.requires_grad_(True)
    text_init = config.projector_init == "text"
    projector = build_projector(
        config.projector,
        _embed_dim(tower),
        feedback.cross_attention_dim,
        "random" if text_init else config.projector_init,
    )
    if text_init:
        from trainer.feedback.bridge import init_text_bridge, read_captions

        cosine = init_text_bridge(
            projector,
            bundle,
            config.diffusion,
            read_captions(config.projector_captions),
            getattr(config.condition, "normalize", False),
        )
        log.info("projector fitted on %s: mean caption cosine %.3f", config.projector_captions, cosine)
    projector.requires_grad_(config.projector_trainable)
    condition = ConditionBuilder(config.condition, projector, feedback.prompt_embeds.float())
    length = condition.check_shapes(num_patches)
    student = Student(tower, condition, anchor).to(device)
    tower_input = TowerInput(bundle.image_size, bundle.mean, bundle.std).to(device)
    return FeedbackSetup(
        bundle=bundle,
        student=student,
        feedback=feedback,
        tower_input=tower_input,
        num_patches=num_patches,
        random_patches=random_count(config.condition, num_patches),
        condition_length=length,
        latent_shape=feedback.latent_shape(config.crop_size),
    )


def _embed_dim(tower: nn.Module) -> int:
    import peft

    base = tower.get_base_model() if isinstance(tower, peft.PeftModel) else tower
    return base.embed_dim
