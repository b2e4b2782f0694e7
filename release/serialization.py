"""Which files a signature covers, under which names, in which order (model-transparency's
`_serialization/`).

* Names are POSIX paths relative to the bundle root, as model-signing writes them.
* The order is model-signing's: by path components (`a/b` sorts before `a.txt`), which is the
  order its manifest hashes resource digests in for the subject digest.
* Symlinks are refused by default. When allowed, a link must point to a regular file inside
  the bundle (resolved with realpath); it is never followed outside, and links to directories
  are never followed.
* Only regular files count; FIFOs, sockets and devices are reported, never opened.
* The signature file itself (`model.sig`) is not covered, exactly as model-signing ignores it.

Nothing here raises for what it finds on disk: problems come back as sentences, so a verifier
can list every reason at once.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

SIGNATURE_NAME = "model.sig"
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class FileEntry:
    name: str  # POSIX path relative to the root, as recorded in the manifest
    path: Path  # what to open: the file itself, or a symlink's resolved target inside the root
    size: int
    via_symlink: bool = False


@dataclass
class Listing:
    files: list[FileEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def by_name(self) -> dict[str, FileEntry]:
        return {entry.name: entry for entry in self.files}


def sort_key(name: str) -> tuple[str, ...]:
    """model-signing orders manifest items by PurePosixPath, i.e. by path components."""
    return PurePosixPath(name).parts


def name_problem(name: object) -> str | None:
    """Why `name` cannot be a manifest entry, or None if it is a clean relative POSIX path."""
    if not isinstance(name, str):
        return f"manifest entry name is not a string: {name!r}"
    if not name:
        return "manifest entry with an empty name"
    if "\x00" in name:
        return f"manifest entry {name!r} contains a NUL byte"
    if "\\" in name:
        return f"manifest entry {name!r} contains a backslash (a path separator on Windows)"
    if name.startswith("/") or _DRIVE.match(name):
        return f"manifest entry {name!r} is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return f"manifest entry {name!r} climbs out of the bundle with '..'"
    if "" in parts or "." in parts:
        return f"manifest entry {name!r} is not a normalised path (empty or '.' component)"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"manifest entry {name!r} is not valid UTF-8"
    return None


def is_ignored(name: str, ignore_paths: tuple[str, ...] | list[str]) -> bool:
    """True if `name` is one of `ignore_paths` or lies under one of them (as model-signing does)."""
    return any(name == ignored or name.startswith(ignored.rstrip("/") + "/") for ignored in ignore_paths)


def list_files(
    root: str | os.PathLike,
    *,
    allow_symlinks: bool = False,
    ignore_paths: tuple[str, ...] | list[str] = (SIGNATURE_NAME,),
) -> Listing:
    """Every regular file under `root`, sorted in manifest order, plus what was wrong."""
    root = Path(root)
    real_root = Path(os.path.realpath(root))
    listing = Listing()
    _walk(root, real_root, "", allow_symlinks, tuple(ignore_paths), listing)
    listing.files.sort(key=lambda entry: sort_key(entry.name))
    return listing


def _walk(
    directory: Path, real_root: Path, prefix: str, allow_symlinks: bool, ignore: tuple[str, ...], listing: Listing
):
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        listing.problems.append(f"cannot list {prefix or '.'}: {exc.strerror or exc}")
        return
    for entry in entries:
        name = f"{prefix}{entry.name}"
        if is_ignored(name, ignore):
            listing.ignored.append(name)
            continue
        problem = _disk_name_problem(name)
        if problem:
            listing.problems.append(problem)
            continue
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError as exc:
            listing.problems.append(f"cannot stat {name}: {exc.strerror or exc}")
            continue
        if stat.S_ISLNK(mode):
            _symlink(entry, name, real_root, allow_symlinks, listing)
        elif stat.S_ISDIR(mode):
            _walk(Path(entry.path), real_root, name + "/", allow_symlinks, ignore, listing)
        elif stat.S_ISREG(mode):
            listing.files.append(FileEntry(name, Path(entry.path), entry.stat(follow_symlinks=False).st_size))
        else:
            listing.problems.append(f"{name} is not a regular file (a FIFO, socket or device); refused")


def _symlink(entry: os.DirEntry, name: str, real_root: Path, allow_symlinks: bool, listing: Listing) -> None:
    target = os.readlink(entry.path)
    if not allow_symlinks:
        listing.problems.append(f"{name} is a symlink (-> {target}); symlinks are refused unless allowed")
        return
    resolved = Path(os.path.realpath(entry.path))
    if resolved != real_root and real_root not in resolved.parents:
        listing.problems.append(f"{name} is a symlink pointing outside the bundle (-> {target}); not followed")
        return
    try:
        info = resolved.stat()
    except OSError:
        listing.problems.append(f"{name} is a dangling symlink (-> {target})")
        return
    if not stat.S_ISREG(info.st_mode):
        listing.problems.append(
            f"{name} is a symlink to something other than a regular file (-> {target}); not followed"
        )
        return
    listing.files.append(FileEntry(name, resolved, info.st_size, via_symlink=True))


def _disk_name_problem(name: str) -> str | None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"{name.encode('utf-8', 'surrogateescape')!r}: file name is not valid UTF-8"
    if "\\" in name:
        return f"{name!r}: file name contains a backslash"
    return None
