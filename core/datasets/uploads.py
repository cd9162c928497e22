"""Uploaded files gathered into one staging folder, hard-linked or copied, never written through a link."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.problems import Problem, ProblemsError

SAME_NAME = ("{count} uploaded files are named '{name}'. The browser sends file names without their folders, so the "
             "studio cannot tell them apart (and a row would get the wrong image). Put the dataset and its images in "
             "one zip, where folders are kept, or give the folder as a path on the server.")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def distinct_uploads(files: list[Path]) -> list[Path]:
    """The files with repeats of the same file dropped; two different files with one name are refused."""
    by_name: dict[str, list[Path]] = {}
    for f in files:
        group = by_name.setdefault(f.name, [])
        if not any(_same_file(f, g) for g in group):
            group.append(f)
    clashes = [Problem(SAME_NAME.format(count=len(g), name=name), field="files")
               for name, g in by_name.items() if len(g) > 1]
    if clashes:
        raise ProblemsError(clashes)
    return [g[0] for g in by_name.values()]


def copy_new(source: Path, target: Path) -> None:
    """Copy into a file that must not exist yet (O_EXCL): never opens, truncates or follows an existing one."""
    with source.open("rb") as src, target.open("xb") as out:
        shutil.copyfileobj(src, out, 1024 * 1024)


def stage_uploads(files: list[Path], staging: Path) -> list[Path]:
    """Place each distinct upload in ``staging`` under its own name (a hard link where the file system allows one,
    else a fresh copy); returns the staged paths in order. The sources are only ever read."""
    staged = []
    for f in distinct_uploads(files):
        target = staging / f.name
        try:
            os.link(f, target)
        except FileExistsError:
            raise ProblemsError([Problem(SAME_NAME.format(count=2, name=f.name), field="files")]) from None
        except OSError:
            copy_new(f, target)
        staged.append(target)
    return staged
