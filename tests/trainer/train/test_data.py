"""Data sources (folder, list file, tar shards) and randomness as a function of position."""

from __future__ import annotations

import tarfile

import pytest
import torch

from trainer.train.data import (
    DatasetError,
    FeedbackDataset,
    crop_params,
    discover_images,
    positions,
    sample_generator,
    stratified_timesteps,
    timestep_window,
)


def _dataset(refs, **kwargs):
    options = dict(
        seed=3,
        crop_size=16,
        crop_scale=(0.9, 1.0),
        latent_shape=(4, 8, 8),
        timesteps=(0, 1000),
        draws=2,
        random_patches=5,
        num_patches=16,
    )
    options.update(kwargs)
    return FeedbackDataset(refs, **options)


def test_folder_list_and_shards_find_the_same_images(tiny_world, tmp_path):
    images = sorted(tiny_world["images"].glob("*.png"))
    folder = discover_images(str(tiny_world["images"]))
    listing = tmp_path / "list.txt"
    listing.write_text("# my images\n" + "\n".join(str(p) for p in images) + "\n")
    listed = discover_images(str(listing))
    for shard_index, chunk in enumerate((images[:5], images[5:])):
        with tarfile.open(tmp_path / f"shard-{shard_index:03d}.tar", "w") as tar:
            for path in chunk:
                tar.add(path, arcname=f"{path.stem}.png")
    shards = discover_images(str(tmp_path / "shard-{000..001}.tar"))
    assert len(folder) == len(listed) == len(shards) == len(images)
    a = _dataset(folder)[3]
    b = _dataset(shards)[3]
    assert torch.equal(a["pixels"], b["pixels"])  # same order, same crop, same pixels
    assert len(discover_images(str(tmp_path))) == len(images)  # a folder of shards


def test_a_sample_is_a_pure_function_of_seed_and_position(tiny_world):
    refs = discover_images(str(tiny_world["images"]))
    first, again = _dataset(refs)[11], _dataset(refs)[11]
    for key in ("pixels", "timesteps", "noise", "patches"):
        assert torch.equal(first[key], again[key])
    other = _dataset(refs, seed=4)[11]
    assert not torch.equal(first["noise"], other["noise"])
    assert first["noise"].shape == (2, 4, 8, 8) and first["patches"].max() < 16
    assert first["pixels"].shape == (3, 16, 16) and 0 <= first["pixels"].min() <= first["pixels"].max() <= 1


def test_each_epoch_visits_every_image_once(tiny_world):
    dataset = _dataset(discover_images(str(tiny_world["images"])))
    order = dataset.epoch_order(0)
    assert sorted(order.tolist()) == list(range(len(dataset)))
    assert order.tolist() != dataset.epoch_order(1).tolist()


def test_positions_of_ranks_tile_the_doubled_batch():
    one = positions(3, 1, grad_accum=2, world=1, rank=0, batch=4)
    two = positions(3, 1, grad_accum=2, world=2, rank=0, batch=2) + positions(
        3, 1, grad_accum=2, world=2, rank=1, batch=2
    )
    assert one == two == [28, 29, 30, 31]


def test_crop_box_respects_scale_and_bounds():
    generator = sample_generator(0, 0)
    for _ in range(50):
        top, left, h, w = crop_params(40, 48, (0.9, 1.0), generator)
        assert top >= 0 and top + h <= 40 and left >= 0 and left + w <= 48
        assert h * w >= 0.85 * 40 * 48


def test_missing_sources_are_named(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        discover_images(str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="does not exist"):
        discover_images(str(tmp_path / "nope.txt"), "list")
    (tmp_path / "bad.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(DatasetError, match="not a readable tar"):
        discover_images(str(tmp_path / "bad.tar"))
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(DatasetError, match="contains no images"):
        discover_images(str(tmp_path / "notes.txt"))


def test_timesteps_are_drawn_inside_the_recipes_window(tiny_world):
    assert timestep_window((0.0, 1.0), 1000) == (0, 1000)
    assert timestep_window((0.1, 0.6), 1000) == (100, 600)
    assert timestep_window((0.5, 0.5001), 1000) == (500, 501)  # never an empty range
    assert timestep_window((0.9996, 1.0), 1000) == (999, 1000)  # never past the schedule
    refs = discover_images(str(tiny_world["images"]))
    dataset = _dataset(refs, timesteps=(100, 600), draws=8)
    drawn = torch.cat([dataset[i]["timesteps"] for i in range(len(refs))])
    assert drawn.min() >= 100 and drawn.max() < 600


def test_stratified_draws_of_a_micro_batch_take_one_stratum_each():
    """8 samples x 2 draws over [100, 900): 16 strata of 50 timesteps, each taken once per group."""
    window, group, draws = (100, 900), 8, 2

    def drawn(position: int) -> torch.Tensor:
        generator = sample_generator(3, position)
        return stratified_timesteps(window, position, group, draws, 3, generator)

    for start in (0, 8, 800):  # three micro-batches
        steps = torch.cat([drawn(p) for p in range(start, start + group)])
        assert steps.min() >= 100 and steps.max() < 900
        assert sorted(((steps - 100) // 50).tolist()) == list(range(16))
    assert torch.equal(drawn(5), drawn(5))  # a pure function of (seed, position): exact resume
    assert not torch.equal(
        torch.cat([drawn(p) for p in range(8)]), torch.cat([drawn(p) for p in range(8, 16)])
    )
    # over many micro-batches each draw is still uniform on the window
    every = torch.cat([drawn(p) for p in range(8 * 200)]).float()
    assert abs(every.mean().item() - 499.5) < 10


def test_the_recipe_switches_the_dataset_to_stratified_draws(tiny_world):
    refs = discover_images(str(tiny_world["images"]))
    dataset = _dataset(refs, draws=1, stratify_group=4)
    steps = torch.cat([dataset[p]["timesteps"] for p in range(4)])
    assert sorted((steps // 250).tolist()) == [0, 1, 2, 3]
