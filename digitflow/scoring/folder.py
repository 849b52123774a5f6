"""A local input folder: every entry listed, and only what lies inside the folder read.

Whatever a folder holds becomes an input of the batch, so that nothing is left out
silently: a link that loops or leads nowhere, a folder that cannot be listed, a named pipe.
Reading such an entry fails with its reason, and the batch quarantines it. A symbolic link
to a file inside the folder is not read (the file is, under its own name: its digits are
counted once); one that leads out of it is read only when the caller allows it, and links
to folders are never followed.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from digitflow.errors import SourceError, UnreadableNow


def check_folder(root: Path) -> None:
    """SourceError unless ``root`` is a folder (before a batch is opened on it)."""
    if not root.is_dir():
        raise SourceError(
            f"input folder {root} does not exist or is not a folder: "
            "give a folder of scans or an s3://bucket/prefix"
        )


def list_folder(root: Path) -> list[tuple[str, int]]:
    """(name, size) of every entry below ``root`` that is not a folder, and of every folder
    that cannot be listed (size -1 where it is not a regular file)."""
    check_folder(root)
    found: list[tuple[str, int]] = []
    stack = [root]
    while stack:  # a stack, not recursion: a deep tree must not hit Python's recursion limit
        folder = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as exc:
            if folder == root:
                raise SourceError(f"input folder {root} cannot be read ({exc.strerror})") from exc
            found.append((shown(folder.relative_to(root).as_posix()), -1))
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            else:
                name = shown(Path(entry.path).relative_to(root).as_posix())
                found.append((name, _size(entry)))
    return found


def shown(name: str) -> str:
    """A name as the batch keeps it: valid UTF-8, its bytes that are not (a name from an
    older system, say Latin-1) written as ``\\xNN`` escapes. Results, keys and tables hold
    UTF-8 only. A name that escapes bytes, or holds text that reads as an escape, has its
    own backslashes escaped too (``\\x5c``), so no two names are shown alike: a file
    named ``b\\xe9.png`` is not taken for the one whose name is the byte E9 after ``b``."""
    if not _UNDECODED.search(name) and "\\x" not in name:
        return name
    raw = name.encode("utf-8", "surrogateescape").replace(b"\\", b"\\x5c")
    return raw.decode("utf-8", "backslashreplace")


def _on_disk(root: Path, name: str) -> Path:
    """The entry ``name`` (as ``shown`` gives it) stands for below ``root``."""
    if "\\x" not in name:
        return root / name
    raw = _ESCAPED.sub(lambda m: "\\" if m[1] == "5c" else chr(0xDC00 + int(m[1], 16)), name)
    return root / raw


_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as os decodes them
_ESCAPED = re.compile(r"\\x(5c|[89a-f][0-9a-f])")


# A scanned file larger than this is refused unread: it would be read whole into memory,
# and no scan of digits is near it (a 600-page PDF at 300 dpi is a few hundred MiB).
MAX_FILE_BYTES = 1 << 30


def _size(entry: os.DirEntry[str]) -> int:
    try:
        regular = entry.is_file(follow_symlinks=False)
        return entry.stat(follow_symlinks=False).st_size if regular else -1
    except OSError:
        return -1


def read_entry(root: Path, name: str, follow_outside_links: bool = False) -> bytes:
    """The bytes of the file ``name`` below ``root``; SourceError with the reason if it is
    not a readable regular file inside ``root`` (or, if allowed, one a link leads to)."""
    where = f"{str(root).rstrip('/')}/{name}"
    path = _on_disk(root, name)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError as exc:
        raise UnreadableNow(
            f"{where}: cannot be read (listed, but gone when read: deleted or moved while the "
            "batch ran)"
        ) from exc
    except OSError as exc:
        raise UnreadableNow(f"{where}: cannot be read ({exc.strerror})") from exc
    if stat.S_ISDIR(mode):
        raise UnreadableNow(_unlisted_folder(path, where))
    real = _resolve(root, path, where, follow_outside_links)
    if stat.S_ISLNK(mode) and _listed_inside(root, real):
        target = shown(real.relative_to(os.path.realpath(root)).as_posix())
        raise SourceError(
            f"{where}: a symbolic link to {target}, which this batch reads under that name: "
            "not read twice (its digits would be counted twice)"
        )
    return _read_regular(real, where, None if follow_outside_links else root)


def _listed_inside(root: Path, real: Path) -> bool:
    """Whether the file ``real`` (a path without links) is one the listing of ``root``
    holds: it lies inside, and every folder between can be listed."""
    top = Path(os.path.realpath(root))
    if not real.is_relative_to(top):
        return False
    for folder in [top, *reversed(real.relative_to(top).parents[:-1])]:
        try:
            os.scandir(top / folder).close()
        except OSError:
            return False
    return True


def _unlisted_folder(path: Path, where: str) -> str:
    try:
        os.listdir(path)
    except OSError as exc:
        return (
            f"{where}: a folder that cannot be read ({exc.strerror}), so none of its files is "
            "in this batch: make it readable and score again to read them"
        )
    return (
        f"{where}: a folder that could not be read when the batch was listed, so none of its "
        "files is in this batch: score again to read them"
    )


def _resolve(root: Path, path: Path, where: str, follow_outside_links: bool) -> Path:
    """Where ``path`` really is, if it is a file that may be read."""
    try:
        real = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError as exc:
        raise UnreadableNow(
            f"{where}: a symbolic link to {os.readlink(path)}, which does not exist: "
            "fix or remove the link"
        ) from exc
    except OSError as exc:  # ELOOP
        raise UnreadableNow(
            f"{where}: a symbolic link that leads back to itself ({exc.strerror}): "
            "fix or remove the link"
        ) from exc
    if not follow_outside_links and not real.is_relative_to(os.path.realpath(root)):
        raise UnreadableNow(
            f"{where}: a symbolic link to {real}, outside the input folder: not read "
            "(give --follow-outside-links to read such links)"
        )
    if real.is_dir():
        raise SourceError(
            f"{where}: a symbolic link to a folder, not followed, so its files are not in "
            "this batch: score that folder on its own"
        )
    return real


def _read_regular(real: Path, where: str, inside: Path | None) -> bytes:
    """The bytes of the regular file ``real``, at most ``MAX_FILE_BYTES``; the file opened
    must lie in ``inside`` (None: anywhere), as ``_resolve`` found it did before."""
    not_regular = f"{where}: not a regular file (a named pipe, socket or device): not read"
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            raise SourceError(not_regular)
        # O_NONBLOCK: a named pipe put in place since cannot hang the run; O_NOFOLLOW: nor
        # can a link put in place since lead elsewhere.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        raise UnreadableNow(f"{where}: cannot be read ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise SourceError(not_regular)
        if inside is not None:
            _opened_inside(file.fileno(), inside, where)
        if status.st_size > MAX_FILE_BYTES:
            raise SourceError(too_large(where, status.st_size))
        data = file.read(MAX_FILE_BYTES + 1)  # it may have grown since
        if len(data) > MAX_FILE_BYTES:
            raise SourceError(too_large(where, len(data)))
        return data


def too_large(where: str, size: int) -> str:
    """Why a file over ``MAX_FILE_BYTES`` is not read."""
    return (f"{where}: {size / 2**30:.1f} GiB, over the {MAX_FILE_BYTES >> 30} GiB a scanned "
            "file may be: not read (split it into smaller files)")  # fmt: skip


def _opened_inside(fd: int, root: Path, where: str) -> None:
    """SourceError unless the file open as ``fd`` lies in ``root``: a folder on its path
    may have been swapped for a link out of it after the path was checked and before it
    was opened (``/proc`` names the file that was opened; without it, nothing to check)."""
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return
    if not Path(opened).is_relative_to(os.path.realpath(root)):
        raise UnreadableNow(
            f"{where}: led outside the input folder when it was opened (to {opened}): not "
            "read (give --follow-outside-links to read such links)"
        )
