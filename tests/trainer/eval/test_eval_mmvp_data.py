"""The MMVP-VLM reader: official layout, both folder spellings, and errors that name file and row."""

from __future__ import annotations

import shutil

import pytest

from trainer.eval.mmvp import evaluate_mmvp
from trainer.eval.mmvp_data import MMVPDataError, load_mmvp


def test_reads_official_layout(color_mmvp):
    pairs = load_mmvp(color_mmvp)
    assert [p.question_ids for p in pairs] == [(1, 2), (3, 4), (5, 6)]
    assert [p.pattern for p in pairs] == ["Color and Appearance"] * 2 + ["Orientation and Direction"]
    assert pairs[0].statements == ("a red square", "a blue square")
    assert pairs[2].images[1] == color_mmvp / "MLLM_VLM Images" / "Orientation" / "6.jpg"
    assert pairs[1].rows == (4, 5)


def test_accepts_underscore_folder(tmp_path, mmvp_writer):
    root = mmvp_writer(tmp_path, [("Color", ("red", "blue"), ("red", "blue"))], image_dir="MLLM_VLM_Images")
    assert load_mmvp(root)[0].images[0].parent.parent.name == "MLLM_VLM_Images"


def test_missing_image_names_file_and_row(color_mmvp):
    (color_mmvp / "MLLM_VLM Images" / "Color" / "4.jpg").unlink()
    with pytest.raises(MMVPDataError, match=r"row 5 \(Question ID 4\): image not found: .*Color/4\.jpg"):
        load_mmvp(color_mmvp)


def test_wrong_columns_named(color_mmvp):
    csv_path = color_mmvp / "Questions.csv"
    csv_path.write_text(csv_path.read_text().replace("Statement", "Text", 1))
    with pytest.raises(MMVPDataError, match=r"Questions\.csv: wrong columns .*missing \['Statement'\]"):
        load_mmvp(color_mmvp)


def test_odd_number_of_statements_names_last_row(color_mmvp):
    csv_path = color_mmvp / "Questions.csv"
    csv_path.write_text("".join(csv_path.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(
        MMVPDataError, match=r"odd number of statements \(5\); row 6 \(Question ID 5\) has no pair"
    ):
        load_mmvp(color_mmvp)


def test_rows_out_of_pair_order(color_mmvp):
    csv_path = color_mmvp / "Questions.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text("".join([lines[0], lines[2], lines[1], *lines[3:]]))
    with pytest.raises(MMVPDataError, match=r"rows 2-3 \(Question IDs 2, 1\) are not a pair"):
        load_mmvp(color_mmvp)


def test_non_integer_id(color_mmvp):
    csv_path = color_mmvp / "Questions.csv"
    csv_path.write_text(csv_path.read_text().replace("\n3,", "\nthree,", 1))
    with pytest.raises(MMVPDataError, match=r"row 4: Question ID 'three' is not an integer"):
        load_mmvp(color_mmvp)


def test_missing_csv_or_image_folder(color_mmvp):
    shutil.rmtree(color_mmvp / "MLLM_VLM Images")
    with pytest.raises(MMVPDataError, match="no image folder"):
        load_mmvp(color_mmvp)
    with pytest.raises(MMVPDataError, match=r"no Questions\.csv"):
        load_mmvp(color_mmvp / "nowhere")


def test_unreadable_image_names_file_and_row(color_mmvp, make_bundle):
    (color_mmvp / "MLLM_VLM Images" / "Orientation" / "5.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(
        MMVPDataError, match=r"row 6 \(Question ID 5\): unreadable image .*Orientation/5\.jpg"
    ):
        evaluate_mmvp(make_bundle(), color_mmvp)
