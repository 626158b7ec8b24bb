"""Expand an uploaded zip or tar in memory, refusing anything that could hurt the host.

Nothing is ever extracted to disk, yet unsafe archives are refused outright rather than
partially used: a member that climbs out of the archive (``../``), an absolute path, a link or a
device file says the archive was built to attack, and a decompression bomb (declared sizes over
the limits, an absurd compression ratio, too many members) would cost memory before any image
check runs. Nested archives are not expanded; they are reported as rejected members.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import BinaryIO

ARCHIVE_MAGIC = (
    (0, b"PK\x03\x04", "zip"),
    (0, b"PK\x05\x06", "zip"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"BZh", "bzip2"),
    (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"Rar!\x1a\x07", "rar"),
    (257, b"ustar", "tar"),
)
MAX_RATIO = 200  # images are already compressed: a zip member expanding 200x is a bomb


class UnsafeArchive(ValueError):
    """The archive as a whole is refused; ``reason`` names the member and the problem."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes


def archive_kind(head: bytes) -> str | None:
    """'zip', 'tar', 'gzip', ... from the first 512 bytes, or None for anything else."""
    for offset, magic, kind in ARCHIVE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return None


def check_member_name(name: str) -> str:
    """Refuse absolute paths, drive letters and ``..`` (zip slip); return the clean name."""
    if not name or "\x00" in name:
        raise UnsafeArchive(f"member with an empty or NUL name {name!r}")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise UnsafeArchive(f"member {name!r} has an absolute path")
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafeArchive(f"member {name!r} points outside the archive (zip slip)")
    return posix.as_posix()


def iter_archive(
    fileobj: BinaryIO, *, max_members: int, max_member_bytes: int, max_total_bytes: int
) -> Iterator[Member]:
    """Yield the regular files of a zip or (optionally compressed) tar, checking as it goes."""
    head = fileobj.read(512)
    fileobj.seek(0)
    if archive_kind(head) == "zip":
        yield from _iter_zip(fileobj, max_members, max_member_bytes, max_total_bytes)
    else:
        yield from _iter_tar(fileobj, max_members, max_member_bytes, max_total_bytes)


def _iter_zip(fileobj: BinaryIO, max_members: int, max_member: int, max_total: int) -> Iterator[Member]:
    try:
        archive = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchive(f"corrupt zip archive ({exc})") from None
    infos = archive.infolist()
    files = [info for info in infos if not info.is_dir()]
    if len(files) > max_members:
        raise UnsafeArchive(f"archive holds {len(files)} files; the limit is {max_members}")
    total = 0
    for info in files:
        name = check_member_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchive(f"member {name!r} is a symbolic link; links are not allowed")
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            raise UnsafeArchive(f"member {name!r} is not a regular file")
        _check_size(name, info.file_size, max_member)
        if info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UnsafeArchive(
                f"member {name!r} expands {info.file_size // max(info.compress_size, 1)}x "
                "(decompression bomb)"
            )
        total += info.file_size
        if total > max_total:
            raise UnsafeArchive(f"archive expands to more than {max_total} bytes")
    for info in files:
        try:
            with archive.open(info) as handle:
                data = handle.read(max_member + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise UnsafeArchive(f"cannot read member {info.filename!r} ({exc})") from None
        _check_size(info.filename, len(data), max_member)
        yield Member(info.filename, data)


def _iter_tar(fileobj: BinaryIO, max_members: int, max_member: int, max_total: int) -> Iterator[Member]:
    try:
        archive = tarfile.open(fileobj=fileobj, mode="r:*")  # noqa: SIM115 (closed in finally below)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchive(f"not a readable zip or tar archive ({exc})") from None
    count = total = 0
    try:
        for info in archive:  # streaming: headers are checked before any member is read
            name = check_member_name(info.name)
            if info.isdir():
                continue
            if info.issym() or info.islnk():
                raise UnsafeArchive(f"member {name!r} is a link to {info.linkname!r}; links are not allowed")
            if not info.isreg():
                raise UnsafeArchive(f"member {name!r} is not a regular file (device, fifo, ...)")
            count += 1
            if count > max_members:
                raise UnsafeArchive(f"archive holds more than {max_members} files")
            _check_size(name, info.size, max_member)
            total += info.size
            if total > max_total:
                raise UnsafeArchive(f"archive expands to more than {max_total} bytes")
            handle = archive.extractfile(info)
            data = handle.read(max_member + 1) if handle else b""
            yield Member(name, data)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise UnsafeArchive(f"corrupt archive ({exc})") from None
    finally:
        archive.close()


def _check_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise UnsafeArchive(f"member {name!r} is {size} bytes; the per-file limit is {limit}")


def looks_like_archive(data: bytes) -> bool:
    return archive_kind(data[:512]) is not None
