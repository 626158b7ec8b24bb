"""The MMVP-VLM benchmark on disk: ``Questions.csv`` + ``MLLM_VLM Images/<Type>/<Question ID>.jpg``.

The public copy (Hugging Face ``MMVP/MMVP_VLM``) has the columns ``Question ID``, ``Type``,
``Statement``; consecutive rows form a pair (odd id = the pair's first image, its statement is
true of that image only). ``Type`` is the image sub-folder, one of nine short names, in the
official order below. DIVA renamed the image folder with an underscore; both spellings work.

Every problem is reported as :class:`MMVPDataError` naming the file and the CSV row, because a
benchmark that silently skips a pair reports a wrong number.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

QUESTIONS_FILE = "Questions.csv"
IMAGE_DIRS = ("MLLM_VLM Images", "MLLM_VLM_Images")
COLUMNS = ("Question ID", "Type", "Statement")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# (pattern name as the MMVP paper spells it, the ``Type`` value / image folder of the public copy)
MMVP_PATTERNS: tuple[tuple[str, str], ...] = (
    ("Orientation and Direction", "Orientation"),
    ("Presence of Specific Features", "Presence"),
    ("State and Condition", "State"),
    ("Quantity and Count", "Quantity"),
    ("Positional and Relational Context", "Spatial"),
    ("Color and Appearance", "Color"),
    ("Structural Characteristics", "Structural Character"),
    ("Texts", "Text"),
    ("Viewpoint and Perspective", "Camera Perspective"),
)
PATTERN_NAMES: tuple[str, ...] = tuple(name for name, _ in MMVP_PATTERNS)
TYPE_OF_PATTERN: dict[str, str] = dict(MMVP_PATTERNS)
PATTERN_OF_TYPE: dict[str, str] = {kind: name for name, kind in MMVP_PATTERNS}


class MMVPDataError(ValueError):
    """The benchmark folder does not follow the MMVP-VLM layout; the message says where."""


@dataclass(frozen=True)
class MMVPPair:
    """Two images and two statements; statement ``i`` is true of image ``i`` only."""

    index: int
    pattern: str
    type: str
    question_ids: tuple[int, int]
    statements: tuple[str, str]
    images: tuple[Path, Path]
    rows: tuple[int, int]
    """1-based line numbers in ``Questions.csv`` (the header is line 1), for error messages."""


def pattern_of(type_value: str) -> str:
    """The paper's pattern name for a ``Type`` value (short or long spelling); others pass through."""
    value = type_value.strip()
    return PATTERN_OF_TYPE.get(value, value)


def find_image_root(data_dir: Path) -> Path:
    for name in IMAGE_DIRS:
        if (data_dir / name).is_dir():
            return data_dir / name
    raise MMVPDataError(f"no image folder in {data_dir}: expected one of {', '.join(map(repr, IMAGE_DIRS))}")


def load_mmvp(data_dir: Path | str) -> list[MMVPPair]:
    """Read and validate the whole benchmark (the images are checked to exist, not decoded)."""
    data_dir = Path(data_dir)
    questions = data_dir / QUESTIONS_FILE
    if not questions.is_file():
        raise MMVPDataError(f"no {QUESTIONS_FILE} in {data_dir}")
    image_root = find_image_root(data_dir)
    rows = _read_rows(questions)
    if len(rows) % 2:
        line, qid, _, _ = rows[-1]
        raise MMVPDataError(
            f"{questions}: odd number of statements ({len(rows)}); row {line} (Question ID {qid}) has no pair"
        )
    pairs = []
    for index in range(0, len(rows), 2):
        (line_a, qid_a, type_a, text_a), (line_b, qid_b, type_b, text_b) = rows[index], rows[index + 1]
        if qid_a % 2 != 1 or qid_b != qid_a + 1:
            raise MMVPDataError(
                f"{questions}: rows {line_a}-{line_b} (Question IDs {qid_a}, {qid_b}) are not a pair; "
                "a pair is an odd id followed by the next even id"
            )
        if type_a != type_b:
            raise MMVPDataError(
                f"{questions}: rows {line_a}-{line_b} form a pair but have different Types "
                f"({type_a!r}, {type_b!r})"
            )
        images = (
            _image_path(image_root, type_a, qid_a, questions, line_a),
            _image_path(image_root, type_b, qid_b, questions, line_b),
        )
        pairs.append(
            MMVPPair(
                index=index // 2,
                pattern=pattern_of(type_a),
                type=type_a,
                question_ids=(qid_a, qid_b),
                statements=(text_a, text_b),
                images=images,
                rows=(line_a, line_b),
            )
        )
    if not pairs:
        raise MMVPDataError(f"{questions}: no statements")
    return pairs


def _read_rows(questions: Path) -> list[tuple[int, int, str, str]]:
    with open(questions, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [column for column in COLUMNS if column not in header]
        if missing:
            raise MMVPDataError(
                f"{questions}: wrong columns {header}; expected {list(COLUMNS)} (missing {missing})"
            )
        reader.fieldnames = header
        rows = []
        for record in reader:
            line = reader.line_num
            raw_id, kind, text = (str(record.get(column) or "").strip() for column in COLUMNS)
            try:
                qid = int(raw_id)
            except ValueError:
                raise MMVPDataError(
                    f"{questions}: row {line}: Question ID {raw_id!r} is not an integer"
                ) from None
            if not kind or not text:
                raise MMVPDataError(f"{questions}: row {line} (Question ID {qid}): empty Type or Statement")
            rows.append((line, qid, kind, text))
    return rows


def _image_path(root: Path, kind: str, qid: int, questions: Path, line: int) -> Path:
    folder = root / kind
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{qid}{suffix}"
        if path.is_file():
            return path
    raise MMVPDataError(
        f"{questions}: row {line} (Question ID {qid}): image not found: {folder / f'{qid}.jpg'}"
    )
