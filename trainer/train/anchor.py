"""What keeps post-training from costing zero-shot accuracy: terms that compare with the base tower.

Diffusion feedback moves image embeddings wherever the frozen UNet reads detail best; the text
tower (zero-shot classification, retrieval) was aligned with where they were. Two terms, both
measured against a frozen copy of the tower as loaded, on the same crops the feedback sees:

* ``drift``: mean (1 - cosine) between the trained and the base embedding. Blunt: it resists
  every change, the wanted ones too.
* ``zeroshot``: ZSCL-style distillation (Zheng et al., 2023): KL(base || trained) of the softmax
  over a class vocabulary's text embeddings, at the CLIP's own logit scale. It only resists
  changes that alter how the image ranks those classes, so detail the classes do not name (a
  direction, a count) is free to move.
* ``zeroshot_level``: the squared change of the image's mean logit over the same classes. A
  softmax cannot see a shift common to every class, but text-to-image retrieval (MMVP-VLM's
  protocol: which of two images matches a statement) ranks images by exactly that level. In the
  lab, feedback raised hollow shapes' similarity to every text and lowered filled ones', so both
  statements of a state pair came to pick the hollow image (docs/lab-log.md, fourteenth session).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainer.recipes.schema import LossConfig


def read_classes(classes: list[str] | str) -> list[str]:
    """The class vocabulary: a list, or a text file with one class name per line."""
    if isinstance(classes, str):
        path = Path(classes)
        if not path.is_file():
            raise FileNotFoundError(f"zeroshot_classes file {path} does not exist")
        classes = [line.strip() for line in path.read_text().splitlines()]
    names = [name for name in classes if name]
    if not names:
        raise ValueError("zeroshot_classes is empty: give class names or a file of them")
    return names


class BaseAnchor(nn.Module):
    """The weighted anchor terms for a batch of trained embeddings and the pixels they came from.

    ``reference`` (a frozen deep copy of the tower) is kept off the module tree: not in
    ``state_dict`` (checkpoints stay one tower) and not in ``parameters()`` (the optimiser and
    DDP never see it). The class text embeddings are a buffer, encoded once by the frozen text tower.
    """

    def __init__(
        self,
        reference: nn.Module,
        config: LossConfig,
        class_texts: torch.Tensor | None = None,
        logit_scale: float = 100.0,
    ) -> None:
        super().__init__()
        object.__setattr__(self, "reference", reference.requires_grad_(False).eval())
        self.drift_weight = config.anchor_weight
        self.zeroshot_weight = config.zeroshot_weight
        self.level_weight = config.zeroshot_level_weight
        self.uses_class_texts = config.uses_class_texts
        self.logit_scale = logit_scale
        texts = F.normalize(class_texts, dim=-1) if class_texts is not None else torch.empty(0)
        self.register_buffer("class_texts", texts, persistent=False)

    def forward(self, pooled: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            base = self.reference(pixels).pooled.float()
        pooled = pooled.float()
        loss = torch.zeros((), device=pooled.device)
        if self.drift_weight > 0:
            loss = loss + self.drift_weight * (1.0 - F.cosine_similarity(pooled, base, dim=-1).mean())
        if self.uses_class_texts:
            texts = self.class_texts
            teacher = self.logit_scale * F.normalize(base, dim=-1) @ texts.T
            student = self.logit_scale * F.normalize(pooled, dim=-1) @ texts.T
            if self.zeroshot_weight > 0:
                kl = F.kl_div(
                    F.log_softmax(student, dim=-1),
                    F.log_softmax(teacher, dim=-1),
                    log_target=True,
                    reduction="batchmean",
                )
                loss = loss + self.zeroshot_weight * kl
            if self.level_weight > 0:
                shift = student.mean(dim=-1) - teacher.mean(dim=-1)
                loss = loss + self.level_weight * shift.square().mean()
        return loss


@torch.no_grad()
def class_text_embeddings(bundle, classes: list[str], template: str) -> torch.Tensor:
    """[K, D] text embeddings of ``template.format(name)`` by the bundle's (frozen) text tower."""
    model = bundle.model.eval()
    tokens = bundle.tokenizer([template.format(name) for name in classes])
    return model.encode_text(tokens, normalize=True).float()


def build_anchor(bundle, tower: nn.Module, config: LossConfig, device: torch.device) -> BaseAnchor | None:
    """A :class:`BaseAnchor` for this run (on ``device``), or None when both weights are 0."""
    if not config.uses_base_anchor:
        return None
    texts = None
    if config.uses_class_texts:
        if config.zeroshot_classes is None:
            raise ValueError(
                "loss.zeroshot_weight or loss.zeroshot_level_weight > 0 needs loss.zeroshot_classes "
                "(names or a file)"
            )
        texts = class_text_embeddings(bundle, read_classes(config.zeroshot_classes), config.zeroshot_template)
    scale = float(bundle.model.logit_scale.exp()) if hasattr(bundle.model, "logit_scale") else 100.0
    # The reference sits off the module tree, so it is moved here, not by Student.to().
    return BaseAnchor(copy.deepcopy(tower).to(device), config, texts, scale).to(device)
