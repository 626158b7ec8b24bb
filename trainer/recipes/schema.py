"""The training recipe: one pydantic model with every knob, loaded from YAML.

A recipe is data: a new variant is a YAML file in ``presets/`` (or a user's own file), never a
subclass. Unknown keys are errors, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainer.feedback.conditions import ClsPlusRandom, ConditionConfig

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RecipeError(ValueError):
    """A recipe file or override that cannot be read or validated; the message names the key."""


class DataConfig(_Strict):
    """Images only: a folder (recursive), a ``.txt`` list of paths, or WebDataset ``.tar`` shards."""

    path: str = Field(description="Folder, .txt list file, .tar shard, folder of shards or '{a..b}' pattern.")
    kind: Literal["auto", "folder", "list", "webdataset"] = "auto"
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")


class OptimConfig(_Strict):
    """DIVA: SGD lr 1e-4 momentum 0.9, no weight decay, cosine with 0.5% warm-up, clip 1.0."""

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(1e-4, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    warmup_fraction: float = Field(0.005, ge=0, lt=1)
    min_lr: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0, description="Max global grad norm; null = off.")
    fused: bool = Field(False, description="Use the fused/foreach optimiser kernels where available.")
    projector_lr_scale: float = Field(
        1.0,
        gt=0,
        description="The projector's learning rate as a share of ``lr``. Adam moves every weight at "
        "about the same rate, and the projector sits next to the condition, so at the full rate it "
        "can answer feedback by re-weighting directions the tower already gives instead of the tower "
        "learning them.",
    )


class LoraConfig(_Strict):
    """LoRA on the tower's linear layers (GenHancer / DCR stage 2); merged before saving."""

    r: int = Field(16, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class LossConfig(_Strict):
    """``mse``: DIVA's epsilon MSE. ``infonce``: DCR's contrastive loss on predicted noise.

    Under DDP the InfoNCE negatives are the other images of each process's own micro-batch.
    """

    kind: Literal["mse", "infonce"] = "mse"
    temperature: float = Field(0.1, gt=0, description="infonce only.")
    mse_weight: float = Field(0.0, ge=0, description="infonce only: + this x the epsilon MSE.")
    anchor_weight: float = Field(
        0.0,
        ge=0,
        description="+ this x mean (1 - cosine) between the trained and the frozen base embedding of "
        "each crop (trainer.train.anchor); 0 = off.",
    )
    zeroshot_weight: float = Field(
        0.0,
        ge=0,
        description="+ this x KL(base || trained) of each crop's softmax over zeroshot_classes "
        "(ZSCL-style zero-shot preservation, trainer.train.anchor); 0 = off.",
    )
    zeroshot_level_weight: float = Field(
        0.0,
        ge=0,
        description="+ this x the squared change of each crop's mean logit over zeroshot_classes "
        "(trainer.train.anchor): the shift common to every class, which the softmax of "
        "zeroshot_weight cannot see but text-to-image retrieval ranks images by; 0 = off.",
    )
    zeroshot_classes: list[str] | str | None = Field(
        None, description="Class names to keep zero-shot accuracy on, or a text file of them (one per line)."
    )
    zeroshot_template: str = Field("a photo of a {}.", description="Prompt for each class name.")

    @property
    def uses_base_anchor(self) -> bool:
        """Whether a term compares with the frozen base tower (trainer.train.anchor)."""
        return self.anchor_weight > 0 or self.uses_class_texts

    @property
    def uses_class_texts(self) -> bool:
        """Whether a term reads the class vocabulary (``zeroshot_classes``)."""
        return self.zeroshot_weight > 0 or self.zeroshot_level_weight > 0


class TrainConfig(_Strict):
    """Every knob of one post-training run (METHOD.md section 2 defaults)."""

    name: str = "diva"
    model: str = Field(description="open_clip architecture name, open_clip folder or registry model folder.")
    pretrained: str | None = Field(None, description="open_clip tag or weights file; null = random.")
    force_image_size: int | None = Field(None, gt=0, description="e.g. 336 for ViT-L-14 @336.")
    diffusion: str = Field(
        description="diffusers folder: unet/, scheduler/, text_encoder/, tokenizer/, vae/."
    )
    prompt: str = "a photo of a ."
    data: DataConfig
    condition: ConditionConfig = Field(default_factory=ClsPlusRandom)
    projector: Literal["linear", "mlp"] = "linear"
    projector_init: Literal["random", "identity", "text"] = Field(
        "random",
        description="identity: a square linear projector starts as the identity map; text: a linear "
        "projector starts as the map from the CLIP's text embeddings to the diffusion model's pooled "
        "text embeddings of projector_captions (trainer.feedback.bridge), for a diffusion model that "
        "reads captions through a text encoder of its own.",
    )
    projector_captions: str | None = Field(
        None, description="projector_init text only: a UTF-8 file of captions, one per line."
    )
    projector_trainable: bool = Field(
        True,
        description="false: the projector keeps its initial weights, so with an identity init the "
        "diffusion model reads the tower's own embedding and only the tower can answer its feedback.",
    )
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    lora: LoraConfig | None = None
    projector_warmup_steps: int = Field(0, ge=0, description="Stage 1: tower frozen for these steps.")
    steps: int = Field(4600, ge=1, description="Optimiser steps.")
    batch_size: int = Field(16, ge=1, description="Images per device per micro-step.")
    grad_accum: int = Field(1, ge=1)
    timestep_draws: int = Field(2, ge=1, description="(t, noise) draws per image, equal weights.")
    timestep_sampling: Literal["independent", "stratified"] = Field(
        "independent",
        description="independent: each draw uniform on timestep_range; stratified: a micro-batch's "
        "draws split the range into equal strata, one each (lower-variance loss, same mean).",
    )
    timestep_range: tuple[float, float] = Field(
        (0.0, 1.0),
        description="Timesteps are drawn uniformly from this share of the scheduler's range "
        "(DIVA: all of it), to spend the draws where the diffusion model reads the condition "
        "(trainer.lab.probe.caption_sensitivity measures where, per property).",
    )
    crop_size: int = Field(512, ge=8, description="RandomResizedCrop side fed to the VAE.")
    crop_scale: tuple[float, float] = (0.9, 1.0)
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU.")
    seed: int = 42
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    output_dir: str = "var/runs/diva"
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    compile: bool = Field(False, description="torch.compile the UNet and the VAE encoder (GPU).")
    fuse_qkv: bool = Field(False, description="Fuse the UNet's attention projections (GPU).")
    grad_checkpointing: bool = Field(False, description="Recompute tower blocks in backward (memory).")
    channels_last: bool = Field(False, description="channels_last memory format for UNet/VAE (GPU).")

    @field_validator("timestep_range")
    @classmethod
    def _timestep_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low < high <= 1:
            raise ValueError(f"timestep_range must satisfy 0 <= low < high <= 1, got {value}")
        return value

    @field_validator("crop_scale")
    @classmethod
    def _scale(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {value}")
        return value

    @model_validator(mode="after")
    def _stages(self) -> TrainConfig:
        if self.projector_init == "text" and (self.projector != "linear" or not self.projector_captions):
            raise ValueError("projector_init text needs projector linear and a projector_captions file")
        if self.projector_warmup_steps >= self.steps:
            raise ValueError(
                f"projector_warmup_steps ({self.projector_warmup_steps}) must be below steps ({self.steps})"
            )
        if self.projector_warmup_steps and not self.projector_trainable:
            raise ValueError("projector_warmup_steps trains the projector alone: needs projector_trainable")
        if self.loss.kind == "infonce" and self.batch_size < 2:
            raise ValueError("loss infonce needs batch_size >= 2 (the other images are the negatives)")
        return self

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        return "bf16" if self.resolved_device().startswith("cuda") else "fp32"


def parse_override(text: str) -> tuple[str, Any]:
    """``'optim.lr=1e-5'`` -> ``('optim.lr', 1e-05)``; the value is read as YAML."""
    if "=" not in text:
        raise RecipeError(f"override {text!r} must look like key=value (e.g. steps=100)")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value.strip() else None


def _apply(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"override {dotted!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def resolve_preset(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a preset in ``trainer/recipes/presets/``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = PRESETS_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    choices = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
    raise RecipeError(f"recipe {str(name_or_path)!r} is neither a file nor a preset ({choices})")


def load_train_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML recipe (file or preset name), apply dotted ``overrides``, validate strictly.

    ``path`` may be None to build a config from overrides alone (the jobs service does this).
    """
    data: dict[str, Any] = {}
    if path is not None:
        file = resolve_preset(path)
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as error:
            raise RecipeError(f"recipe {file} is not valid YAML: {error}") from error
        if not isinstance(data, dict):
            raise RecipeError(f"recipe {file} must be a mapping of keys to values")
    for key, value in (overrides or {}).items():
        _apply(data, key, value)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '<root>'}: {item['msg']}" for item in error.errors()
        )
        raise RecipeError(f"invalid training recipe: {problems}") from error


def dump_train_config(config: TrainConfig) -> str:
    """The resolved recipe as YAML (what ``--dry-run`` prints and every run stores)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
