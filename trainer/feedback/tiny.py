"""Tiny diffusion models in the real diffusers layout, built from configs (no download).

Tests, the lab and the CPU path need a text-to-image model that loads through *exactly* the same
``from_pretrained(folder, subfolder=...)`` code as Stable Diffusion 2.1-base. This writes one:
``unet/``, ``scheduler/`` (SD's scaled-linear betas), ``text_encoder/`` (a small CLIPTextModel),
``tokenizer/`` (a word-level fast tokenizer saved as ``tokenizer.json``), optional ``vae/`` and
``model_index.json``. Weights are random but seeded, so two builds are identical.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.feedback.reference import SD_SCHEDULER

# Words of the fixed DIVA prompt plus a few scene words; anything else maps to [UNK].
_VOCAB_WORDS = [
    "a",
    "photo",
    "of",
    ".",
    "the",
    "an",
    "image",
    "picture",
    "with",
    "and",
    "on",
    "in",
    "left",
    "right",
    "red",
    "green",
    "blue",
    "circle",
    "square",
    "triangle",
    "small",
    "large",
    "one",
    "two",
    "three",
]
_SPECIAL = ("<|pad|>", "<|unk|>", "<|startoftext|>", "<|endoftext|>")


def _build_tokenizer(folder: Path, max_length: int) -> None:
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate((*_SPECIAL, *_VOCAB_WORDS))}
    core = Tokenizer(WordLevel(vocab=vocab, unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    core.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        model_max_length=max_length,
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        bos_token=bos,
        eos_token=eos,
    )
    tokenizer.save_pretrained(str(folder))


def build_tiny_diffusion(
    folder: Path | str,
    *,
    with_vae: bool = True,
    cross_attention_dim: int = 32,
    sample_size: int = 8,
    block_out_channels: tuple[int, ...] = (32, 64),
    text_width: int = 32,
    max_length: int = 77,
    seed: int = 0,
) -> Path:
    """Write a tiny SD-like diffusers folder and return its path.

    With ``with_vae`` the UNet works on 4-channel latents of an image ``2 * sample_size`` pixels
    wide (the tiny VAE downsamples by 2); without, it works in pixel space (3 channels,
    ``sample_size`` pixels), which is what the feedback module does when ``vae/`` is absent.
    ``max_length`` is the prompt length (77, like SD, so the token-wise DIVA condition fits).
    """
    import diffusers
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    groups = min(8, block_out_channels[0])
    channels = 4 if with_vae else 3
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=1,
        block_out_channels=block_out_channels,
        down_block_types=("CrossAttnDownBlock2D",) + ("DownBlock2D",) * (len(block_out_channels) - 1),
        up_block_types=("UpBlock2D",) * (len(block_out_channels) - 1) + ("CrossAttnUpBlock2D",),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=groups,
        use_linear_projection=True,
    )
    unet.save_pretrained(str(folder / "unet"))
    DDPMScheduler(**SD_SCHEDULER).save_pretrained(str(folder / "scheduler"))
    _build_tokenizer(folder / "tokenizer", max_length)
    vocab_size = len(_SPECIAL) + len(_VOCAB_WORDS)
    text_config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=text_width,
        intermediate_size=2 * text_width,
        projection_dim=text_width,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=max_length,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    if text_width != cross_attention_dim:
        raise ValueError(f"text_width ({text_width}) must equal cross_attention_dim ({cross_attention_dim})")
    CLIPTextModel(text_config).save_pretrained(str(folder / "text_encoder"))
    components = {
        "unet": ["diffusers", "UNet2DConditionModel"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
    }
    if with_vae:
        AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(block_out_channels[0], block_out_channels[0]),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=groups,
            sample_size=2 * sample_size,
            scaling_factor=0.18215,
        ).save_pretrained(str(folder / "vae"))
        components["vae"] = ["diffusers", "AutoencoderKL"]
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__}
    index.update(components)
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder
