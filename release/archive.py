"""An optional tar of a bundle directory, and safe verification of such a tar.

The tar is deterministic (sorted entries, fixed mtime, uid/gid 0, modes 0644/0755) so the same
bundle always gives the same bytes. Verifying a tar never trusts it: every member must be a
regular file or directory under one top-level directory, with a clean relative name, no
duplicates and no links; it is then extracted with tarfile's "data" filter into a private
temporary directory and verified like a directory.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from release.atomic import atomic_file
from release.errors import ReleaseError
from release.serialization import list_files, name_problem

FIXED_MTIME = 315532800  # 1980-01-01, as reproducible-build tools use


def write_tar(bundle: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write `bundle` as a deterministic tar (default: BUNDLE.tar beside it), atomically."""
    bundle = Path(bundle)
    out = Path(out) if out is not None else bundle.with_name(bundle.name + ".tar")
    listing = list_files(bundle, ignore_paths=())
    if listing.problems:
        raise ReleaseError(f"{bundle}: cannot archive: {listing.problems[0]}")
    # mode 0600, as the archive has always been written (tempfile.mkstemp's mode)
    with atomic_file(out, 0o600) as handle, tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted({str(Path(e.name).parent) for e in listing.files} - {"."})
        tar.addfile(_info(bundle.name, directory=True))
        for directory in directories:
            tar.addfile(_info(f"{bundle.name}/{directory}", directory=True))
        for entry in listing.files:
            info = _info(f"{bundle.name}/{entry.name}", size=entry.size)
            with open(entry.path, "rb") as source:
                tar.addfile(info, source)
    return out


def _info(name: str, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = 0 if directory else size
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tar_problems(path: Path) -> tuple[str | None, list[str]]:
    """(top-level directory name, problems) after inspecting every member without extracting."""
    problems: list[str] = []
    tops, seen = set(), set()
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar.getmembers():
                name = member.name.rstrip("/")
                problem = name_problem(name)
                if problem:
                    problems.append(f"tar member: {problem.replace('manifest entry', 'path')}")
                    continue
                if name in seen:
                    problems.append(f"tar member {name!r} appears twice")
                seen.add(name)
                tops.add(name.split("/", 1)[0])
                if not (member.isfile() or member.isdir()):
                    problems.append(f"tar member {name!r} is a link or special file; refused")
    except (tarfile.TarError, OSError, EOFError) as exc:
        return None, [f"{path.name} is not a readable tar ({exc})"]
    if len(tops) != 1:
        problems.append(f"{path.name} must hold exactly one top-level directory, found {len(tops)}")
        return None, problems
    return tops.pop(), problems


@contextlib.contextmanager
def extracted(path: str | os.PathLike) -> Iterator[tuple[Path | None, list[str]]]:
    """Yield (bundle directory extracted from the tar, problems); the copy is removed afterwards."""
    path = Path(path)
    if not path.is_file():
        raise ReleaseError(f"{path}: no such bundle tar")
    top, problems = tar_problems(path)
    if problems or top is None:
        yield None, problems
        return
    with tempfile.TemporaryDirectory(prefix="mintline-verify-") as scratch:
        with tarfile.open(path, mode="r:*") as tar:
            tar.extractall(scratch, filter="data")  # second line of defence behind tar_problems
        yield Path(scratch) / top, []


def is_tar(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_file() and (path.suffix == ".tar" or tarfile.is_tarfile(path))
