"""Images-only datasets with randomness that is a pure function of (seed, sample position).

The stream of samples is indexed by a global *position* (optimiser step, micro-step, rank,
slot). Everything random about a sample (which image, its crop, its timesteps and noise, the
condition's random patches) is drawn from a generator seeded by ``(seed, position)``. Hence:
exact resume needs only the step; and a 2-process run sees exactly the samples, crops and noise
that one process with the doubled batch sees.
"""

from __future__ import annotations

import math
import tarfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class DatasetError(ValueError):
    """The data source is missing, empty or unreadable; the message names it."""


@dataclass(frozen=True)
class ImageRef:
    """Where one image lives: a file, or a member of a tar shard."""

    path: str
    member: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}::{self.member}" if self.member else self.path


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _expand_shards(path: str) -> list[Path]:
    if "{" in path:
        from braceexpand import braceexpand

        return [Path(p) for p in braceexpand(path)]
    folder = Path(path)
    if folder.is_dir():
        return sorted(folder.glob("*.tar"))
    return [folder]


def discover_images(path: str, kind: str = "auto") -> list[ImageRef]:
    """List the images of a data source (sorted, so the order is reproducible)."""
    source = Path(path)
    if kind == "auto":
        if "{" in path or source.suffix == ".tar" or (source.is_dir() and any(source.glob("*.tar"))):
            kind = "webdataset"
        elif source.is_file() and source.suffix == ".txt":
            kind = "list"
        else:
            kind = "folder"
    if kind == "folder":
        if not source.is_dir():
            raise DatasetError(f"image folder {source} does not exist")
        refs = [ImageRef(str(p)) for p in sorted(source.rglob("*")) if p.is_file() and _is_image(p.name)]
    elif kind == "list":
        if not source.is_file():
            raise DatasetError(f"image list file {source} does not exist")
        refs = []
        for line in source.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                item = Path(line)
                refs.append(ImageRef(str(item if item.is_absolute() else source.parent / item)))
    elif kind == "webdataset":
        refs = []
        for shard in _expand_shards(path):
            if not shard.is_file():
                raise DatasetError(f"WebDataset shard {shard} does not exist")
            try:
                with tarfile.open(shard) as tar:
                    names = sorted(m.name for m in tar.getmembers() if m.isfile() and _is_image(m.name))
            except tarfile.TarError as error:
                raise DatasetError(f"WebDataset shard {shard} is not a readable tar: {error}") from error
            refs.extend(ImageRef(str(shard), name) for name in names)
    else:
        raise DatasetError(f"unknown data kind {kind!r}: choose auto, folder, list or webdataset")
    if not refs:
        raise DatasetError(
            f"dataset {path} contains no images (looked for {', '.join(IMAGE_EXTENSIONS)} as {kind})"
        )
    return refs


_TAR_HANDLES = threading.local()


def _read_bytes(ref: ImageRef) -> bytes:
    if ref.member is None:
        return Path(ref.path).read_bytes()
    handles = getattr(_TAR_HANDLES, "open", None)
    if handles is None:
        handles = _TAR_HANDLES.open = {}
    tar = handles.get(ref.path)
    if tar is None:
        tar = handles[ref.path] = tarfile.open(ref.path)  # noqa: SIM115 - kept open for random access
    handle = tar.extractfile(ref.member)
    if handle is None:
        raise OSError(f"{ref.name} is not a regular file")
    return handle.read()


def load_rgb(ref: ImageRef) -> Image.Image:
    """Decode fully (so truncated files fail here, not later) and convert to RGB."""
    import io

    image = Image.open(io.BytesIO(_read_bytes(ref)))
    image.load()
    return image.convert("RGB")


def sample_generator(seed: int, position: int, stream: int = 0) -> torch.Generator:
    """A CPU generator determined by (seed, position, stream) only."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, position, stream]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def timestep_window(share: tuple[float, float], num_timesteps: int) -> tuple[int, int]:
    """A recipe's ``timestep_range`` (shares of the schedule) as [low, high) training timesteps."""
    low = min(round(share[0] * num_timesteps), num_timesteps - 1)  # never past the last timestep
    return low, max(low + 1, round(share[1] * num_timesteps))


def stratified_timesteps(
    window: tuple[int, int], position: int, group_size: int, draws: int, seed: int, generator: torch.Generator
) -> torch.Tensor:
    """One sample's ``draws`` timesteps when a micro-batch's draws are spread over the window.

    The ``group_size * draws`` draws of the micro-batch that holds ``position`` (positions
    ``group * group_size`` on; ``group_size`` is the global micro-batch) take one stratum each of
    equal width, in an order shuffled per micro-batch, and a uniform point within it: a
    low-discrepancy sampler (Kingma et al., Variational Diffusion Models, 2021) that cuts the
    variance of a batch's loss over timesteps while each draw stays uniform on the window. Still
    a pure function of (seed, position), so resuming is exact.
    """
    low, high = window
    group, index = divmod(position, group_size)
    strata = group_size * draws
    order = np.random.default_rng([seed & 0xFFFFFFFF, group, 2]).permutation(strata)
    own = torch.from_numpy(order[index * draws : (index + 1) * draws].astype(np.float64))
    point = (own + torch.rand(draws, generator=generator, dtype=torch.float64)) / strata
    return (low + (point * (high - low)).floor().long()).clamp(max=high - 1)


def crop_params(
    height: int, width: int, scale: tuple[float, float], generator: torch.Generator
) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box (torchvision's algorithm, ratio 3/4..4/3) from ``generator``."""
    area = height * width
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1], generator=generator))
        ratio = math.exp(float(torch.empty(1).uniform_(*log_ratio, generator=generator)))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    # torchvision's fallback: the whole image, trimmed to the ratio bounds, centred.
    in_ratio = width / height
    if in_ratio < 3 / 4:
        w, h = width, round(width / (3 / 4))
    elif in_ratio > 4 / 3:
        w, h = round(height * (4 / 3)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class FeedbackDataset(torch.utils.data.Dataset):
    """Maps a global sample position to (crop in [0, 1], timesteps, noise, patch indices).

    Unreadable or truncated images are skipped: the position falls through to the next image of
    the epoch's order (deterministically), and the bad image's index is reported with the sample.
    """

    def __init__(
        self,
        refs: list[ImageRef],
        *,
        seed: int,
        crop_size: int,
        crop_scale: tuple[float, float],
        latent_shape: tuple[int, int, int],
        timesteps: tuple[int, int],
        draws: int,
        random_patches: int,
        num_patches: int,
        second_view: bool = False,
        stratify_group: int = 0,
    ) -> None:
        if not refs:
            raise DatasetError("dataset contains no images")
        self.refs = refs
        self.seed = seed
        self.crop_size = crop_size
        self.crop_scale = crop_scale
        self.latent_shape = latent_shape
        self.timesteps = timesteps  # [low, high) of the scheduler's training timesteps
        self.draws = draws
        self.random_patches = random_patches
        self.num_patches = num_patches
        self.second_view = second_view
        self.stratify_group = stratify_group  # global micro-batch size, or 0: independent draws

    def __len__(self) -> int:
        return len(self.refs)

    @lru_cache(maxsize=4)  # noqa: B019 - a few epochs' orders, per dataset object
    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, epoch]).permutation(len(self.refs))

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        n = len(self.refs)
        order = self.epoch_order(position // n)
        bad: list[int] = []
        for offset in range(n):
            index = int(order[(position + offset) % n])
            try:
                image = load_rgb(self.refs[index])
                break
            except Exception:  # any decode failure: skip and count, never crash the run
                bad.append(index)
        else:
            raise DatasetError(f"none of the {n} images of the dataset could be read")
        generator = sample_generator(self.seed, position)
        top, left, h, w = crop_params(image.height, image.width, self.crop_scale, generator)
        crop = TF.resized_crop(
            image,
            top,
            left,
            h,
            w,
            [self.crop_size, self.crop_size],
            TF.InterpolationMode.BICUBIC,
            antialias=True,
        )
        pixels = TF.to_tensor(crop)
        if self.stratify_group:
            timesteps = stratified_timesteps(
                self.timesteps, position, self.stratify_group, self.draws, self.seed, generator
            )
        else:
            timesteps = torch.randint(*self.timesteps, (self.draws,), generator=generator)
        noise = torch.randn((self.draws, *self.latent_shape), generator=generator)
        patches = torch.randint(0, max(1, self.num_patches), (self.random_patches,), generator=generator)
        sample = {
            "pixels": pixels,
            "timesteps": timesteps,
            "noise": noise,
            "patches": patches,
            "bad": torch.tensor(bad, dtype=torch.long),
            "position": torch.tensor(position),
        }
        if self.second_view:  # an independent crop of the same image (contrastive losses)
            view = sample_generator(self.seed, position, stream=1)
            top, left, h, w = crop_params(image.height, image.width, self.crop_scale, view)
            sample["pixels_aug"] = TF.to_tensor(
                TF.resized_crop(
                    image, top, left, h, w, [self.crop_size] * 2, TF.InterpolationMode.BICUBIC, antialias=True
                )
            )
        return sample


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack the tensors; concatenate the variable-length lists of skipped image indices."""
    out = {key: torch.stack([s[key] for s in samples]) for key in samples[0] if key != "bad"}
    out["bad"] = torch.cat([s["bad"] for s in samples])
    return out


def positions(step: int, micro: int, *, grad_accum: int, world: int, rank: int, batch: int) -> list[int]:
    """Global sample positions of one rank's micro-batch (identical to one process with world*batch)."""
    start = ((step * grad_accum + micro) * world + rank) * batch
    return list(range(start, start + batch))
