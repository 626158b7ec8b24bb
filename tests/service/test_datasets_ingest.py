"""Dataset ingest: verified images, content addressing, and every kind of hostile archive."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.datasets import DatasetLimits, DatasetRejected, Upload, ingest
from state.datasets import DatasetStore


def png(seed: int, size: int = 16) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def zip_of(members: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def tar_of(members: dict[str, bytes], *, link: tuple[str, str] | None = None, mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type = tarfile.SYMTYPE
            info.linkname = link[1]
            archive.addfile(info)
    return buffer.getvalue()


def run(store: DatasetStore, files: dict[str, bytes], limits: DatasetLimits | None = None):
    uploads = [Upload(name, io.BytesIO(data)) for name, data in files.items()]
    return ingest(uploads, store, limits or DatasetLimits())


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")


def test_images_are_verified_deduplicated_and_content_addressed(store: DatasetStore) -> None:
    manifest = run(store, {"a.png": png(1), "b.png": png(2), "copy.png": png(1), "notes.txt": b"hello"})
    assert manifest.num_images == 2
    rejected = [(r.name, "not a recognised image" in r.reason) for r in manifest.rejected]
    assert rejected == [("notes.txt", True)]
    folder = store.images_dir(manifest.id)
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(i.file).name for i in manifest.images)
    for image in manifest.images:
        assert Image.open(folder.parent / image.file).size == (16, 16)
    again = run(store, {"b.png": png(2), "a.png": png(1)})
    assert again.id == manifest.id and again.rejected == []
    assert store.get(manifest.id).num_images == 2
    assert len(list((store.root / "blobs").rglob("*.png"))) == 2


def test_exif_rotated_photo_is_stored_upright(store: DatasetStore) -> None:
    image = Image.new("RGB", (20, 10), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    manifest = run(store, {"phone.jpg": buffer.getvalue()})
    stored = manifest.images[0]
    assert stored.file.endswith(".png") and (stored.width, stored.height) == (10, 20)
    assert Image.open(store.folder(manifest.id) / stored.file).size == (10, 20)


def test_zip_and_tar_archives_are_expanded(store: DatasetStore) -> None:
    members = {"imgs/a.png": png(1), "imgs/b.png": png(2), "readme.md": b"# hi"}
    from_zip = run(store, {"set.zip": zip_of(members)})
    from_tar = run(store, {"set.tar.gz": tar_of(members)})
    assert from_zip.id == from_tar.id and from_zip.num_images == 2
    assert [r.name for r in from_tar.rejected] == ["set.tar.gz:readme.md"]


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (zip_of({"../../evil.png": png(1)}), "zip slip"),
        (zip_of({"/etc/evil.png": png(1)}), "absolute path"),
        (zip_of({"ok.png": png(1)}, symlink="link.png"), "symbolic link"),
        (tar_of({"ok.png": png(1)}, link=("link.png", "/etc/passwd")), "links are not allowed"),
        (tar_of({"a/../../evil.png": png(1)}, mode="w"), "zip slip"),
        (tar_of({"C:\\evil.png": png(1)}), "absolute path"),
        (zip_of({"zeros.png": b"\0" * (8 << 20)}), "decompression bomb"),
    ],
    ids=["zip-slip", "zip-absolute", "zip-symlink", "tar-symlink", "tar-slip", "tar-drive", "zip-bomb"],
)
def test_unsafe_archives_are_refused_whole(store: DatasetStore, archive: bytes, reason: str) -> None:
    with pytest.raises(DatasetRejected, match=reason) as info:
        run(store, {"upload.bin": archive})
    assert info.value.status == 422
    assert not any(store.root.glob("ds-*"))


def test_nested_archive_member_is_rejected_not_expanded(store: DatasetStore) -> None:
    inner = zip_of({"x.png": png(3)})
    manifest = run(store, {"outer.zip": zip_of({"a.png": png(1), "inner.zip": inner})})
    assert manifest.num_images == 1
    assert [(r.name, r.reason) for r in manifest.rejected] == [
        ("outer.zip:inner.zip", "nested archives are not expanded")
    ]


def test_limits_on_count_and_bytes(store: DatasetStore) -> None:
    small = DatasetLimits(max_files=2, max_bytes=10_000, max_file_bytes=5_000)
    with pytest.raises(DatasetRejected, match="more than 2 files") as info:
        run(store, {f"{i}.png": png(i, 4) for i in range(3)}, small)
    assert info.value.status == 413
    with pytest.raises(DatasetRejected, match="holds 3 files; the limit is 2"):
        run(store, {"s.zip": zip_of({f"{i}.png": png(i, 4) for i in range(3)})}, small)
    with pytest.raises(DatasetRejected, match="larger than 5000 bytes"):
        run(store, {"big.png": png(0, 64)}, small)
    roomy = DatasetLimits(max_files=10, max_bytes=10_000, max_file_bytes=5_000)
    with pytest.raises(DatasetRejected, match="upload exceeds 10000 bytes"):
        run(store, {f"{i}.png": png(i, 36) for i in range(3)}, roomy)
    with pytest.raises(DatasetRejected, match="per-file limit is 5000"):
        run(store, {"s.tgz": tar_of({"big.png": png(0, 48)})}, small)


def test_empty_or_useless_uploads_are_refused(store: DatasetStore) -> None:
    with pytest.raises(DatasetRejected, match="no files uploaded"):
        ingest([], store, DatasetLimits())
    with pytest.raises(DatasetRejected, match="no valid images") as info:
        run(store, {"a.txt": b"text", "b.pdf": b"%PDF-1.4", "empty.png": b""})
    reasons = {r.name: r.reason for r in info.value.rejected}
    assert reasons["b.pdf"] == "PDF documents are not images"
    assert reasons["empty.png"] == "empty image data"
    with pytest.raises(DatasetRejected, match="no valid images"):
        run(store, {"empty.zip": zip_of({})})
