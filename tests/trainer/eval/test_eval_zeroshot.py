"""Zero-shot classification and retrieval with a model whose features agree by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer.eval.retrieval import RetrievalDataError, evaluate_retrieval, recall_at_k
from trainer.eval.zeroshot import ZeroShotDataError, evaluate_zeroshot, topk_accuracy


@pytest.fixture
def colour_folder(tmp_path, solid_image, color_names):
    """ImageFolder: 8 colour classes x 6 images (sizes vary, colour does not)."""
    root = tmp_path / "colours"
    for name in color_names:
        (root / name).mkdir(parents=True)
        for n in range(6):
            solid_image(name, size=12 + n).save(root / name / f"{n}.png")
    return root


def test_agreeing_model_scores_100(colour_folder, make_bundle):
    result = evaluate_zeroshot(make_bundle(), colour_folder)
    assert (result.top1, result.top5) == (100.0, 100.0)
    assert result.num_images == 48 and result.num_classes == 8
    assert set(result.per_class.values()) == {100.0}


def test_shuffled_labels_score_near_chance(tmp_path, solid_image, color_names, make_bundle):
    rng = np.random.default_rng(0)
    root = tmp_path / "shuffled"
    for name in color_names:
        (root / name).mkdir(parents=True)
    for n in range(160):  # each image lands in a random class folder, whatever its colour
        colour, folder = rng.choice(color_names), rng.choice(color_names)
        solid_image(str(colour)).save(root / str(folder) / f"{n}.png")
    result = evaluate_zeroshot(make_bundle(), root)
    assert 0.0 < result.top1 < 30.0  # chance is 12.5
    assert 35.0 < result.top5 < 90.0  # chance is 62.5


def test_class_names_from_json_map(tmp_path, solid_image, color_names, make_bundle):
    root = tmp_path / "coded"
    for i, name in enumerate(color_names):
        (root / f"n{i:03d}").mkdir(parents=True)
        solid_image(name).save(root / f"n{i:03d}" / "a.png")
    (root / "classnames.json").write_text(json.dumps({f"n{i:03d}": n for i, n in enumerate(color_names)}))
    assert evaluate_zeroshot(make_bundle(), root).top1 == 100.0
    # Without the map the folder codes carry no colour word: the model cannot tell.
    (root / "classnames.json").unlink()
    assert evaluate_zeroshot(make_bundle(), root).top1 < 100.0
    # An explicit list in sorted-folder order works too; a short list is a clear error.
    assert evaluate_zeroshot(make_bundle(), root, classnames=list(color_names)).top1 == 100.0
    with pytest.raises(ZeroShotDataError, match="7 names for 8 class folders"):
        evaluate_zeroshot(make_bundle(), root, classnames=list(color_names)[:7])


def test_templates_and_folder_errors(colour_folder, tmp_path, make_bundle):
    result = evaluate_zeroshot(make_bundle(), colour_folder, templates=["{} paint", "the colour {c}"])
    assert result.top1 == 100.0 and result.templates == ["{} paint", "the colour {c}"]
    (colour_folder / "templates.txt").write_text("{} ink\n\nsome {}\n")
    assert evaluate_zeroshot(make_bundle(), colour_folder).templates == ["{} ink", "some {}"]
    with pytest.raises(ZeroShotDataError, match="without a '\\{\\}' placeholder"):
        evaluate_zeroshot(make_bundle(), colour_folder, templates=["a photo"])
    with pytest.raises(ZeroShotDataError, match="dataset folder not found"):
        evaluate_zeroshot(make_bundle(), tmp_path / "none")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ZeroShotDataError, match="no images"):
        evaluate_zeroshot(make_bundle(), tmp_path / "empty")


def test_topk_accuracy_by_hand():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    top1, top2, hits = topk_accuracy(scores, np.array([0, 1, 2]), k=2)
    assert top1 == pytest.approx(100 / 3) and top2 == pytest.approx(200 / 3)
    assert hits.tolist() == [True, False, False]


def test_retrieval_csv_and_jsonl(tmp_path, solid_image, color_names, make_bundle):
    for name in color_names:
        solid_image(name).save(tmp_path / f"{name}.png")
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text("image,caption\n" + "".join(f"{n}.png,a {n} square\n" for n in color_names))
    result = evaluate_retrieval(make_bundle(), csv_file, ks=(1, 5))
    assert result.image_to_text == {"R@1": 100.0, "R@5": 100.0}
    assert result.text_to_image == {"R@1": 100.0, "R@5": 100.0}
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("filepath\ttitle\n" + "".join(f"{n}.png\ta shiny {n} square\n" for n in color_names))
    assert evaluate_retrieval(make_bundle(), tsv, ks=(1,)).text_to_image == {"R@1": 100.0}
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps({"image": f"{n}.png", "caption": [f"{n}", f"some {n} paint"]}) for n in color_names
        )
    )
    result = evaluate_retrieval(make_bundle(), jsonl, ks=(1,))
    assert (result.num_images, result.num_texts) == (8, 16)
    assert result.text_to_image["R@1"] == 100.0 and result.image_to_text["R@1"] == 100.0


def test_retrieval_errors_name_the_line(tmp_path, make_bundle):
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text("image,caption\nmissing.png,a cat\n")
    with pytest.raises(RetrievalDataError, match=r"line 2: image not found: .*missing\.png"):
        evaluate_retrieval(make_bundle(), csv_file)
    csv_file.write_text("path,text\nx.png,a cat\n")
    with pytest.raises(RetrievalDataError, match=r"needs one of the columns \['image', 'filepath'\]"):
        evaluate_retrieval(make_bundle(), csv_file)
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"image": "a.png", "caption": "x"}\n{broken\n')
    with pytest.raises(RetrievalDataError, match="line 1: image not found"):
        evaluate_retrieval(make_bundle(), jsonl)


def test_recall_at_k_by_hand():
    # 2 images, 3 captions: captions 0, 1 belong to image 0, caption 2 to image 1.
    scores = np.array([[0.1, 0.9, 0.8], [0.7, 0.2, 0.3]])
    i2t, t2i = recall_at_k(scores, [0, 0, 1], ks=(1, 2))
    # image 0 ranks its own caption first; image 1 ranks caption 0 (not its own) before caption 2.
    assert i2t == {"R@1": 50.0, "R@2": 100.0}
    # caption 1 finds image 0 first; captions 0 and 2 find the other image first.
    assert t2i == {"R@1": pytest.approx(100 / 3), "R@2": 100.0}


def test_clip_benchmark_missing_says_how_to_install(make_bundle, tmp_path):
    import importlib.util

    from trainer.eval.benchmark import ClipBenchmarkMissing, evaluate_clip_benchmark

    if importlib.util.find_spec("clip_benchmark") is not None:
        pytest.skip("clip_benchmark is installed here")
    with pytest.raises(ClipBenchmarkMissing, match=r"diva-serve\[benchmarks\]"):
        evaluate_clip_benchmark(make_bundle(), "cifar10", tmp_path)


def test_clip_benchmark_loader_matches_our_zeroshot(tmp_path, solid_image, color_names):
    """Where clip_benchmark is installed: its fer2013 loader + our scoring == evaluate_zeroshot."""
    pytest.importorskip("clip_benchmark")
    pytest.importorskip("sklearn")
    import torch

    from trainer.backbones import create_clip
    from trainer.eval.benchmark import evaluate_clip_benchmark

    builder = pytest.importorskip("clip_benchmark.datasets.builder")
    folders = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    for folder, colour in zip(folders, color_names):
        (tmp_path / "test" / folder).mkdir(parents=True)
        for n in range(3):
            solid_image(colour, size=20 + n).save(tmp_path / "test" / folder / f"{n}.png")
    torch.manual_seed(0)
    bundle = create_clip("diva-tiny-vit")
    metrics = evaluate_clip_benchmark(bundle, "fer2013", tmp_path)
    reference = builder.build_dataset("fer2013", root=str(tmp_path), split="test", download=False)
    ours = evaluate_zeroshot(
        bundle, tmp_path / "test", templates=list(reference.templates), classnames=list(reference.classes)
    )
    assert metrics["num_images"] == 21 and metrics["num_classes"] == 7
    assert metrics["top1"] == pytest.approx(ours.top1) and metrics["top5"] == pytest.approx(ours.top5)
