"""Where the results folder may be: audiofold writes and deletes there freely, so it must be its own.

Refused: the filesystem root, the home folder, the project folder and any folder above one of them
(their files would be overwritten by artifacts of the same name), a file, a folder that takes no new
files, and a non-empty folder without the marker file audiofold writes into the folders it makes,
unless the user says these files may be overwritten (``results_dir_adopt``). A folder that holds an
earlier run's ``validation/report.json`` (made before the marker existed) counts as audiofold's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import capped
from .io import write_text

MARKER = ".audiofold-results"
# Written by every run's first step before the marker existed: such a folder is audiofold's too.
EARLIER_RUN = Path("validation") / "report.json"
ADOPT_KEY = "results_dir_adopt"


def _shown(path: str | os.PathLike) -> str:
    return capped(repr(str(path)))


def protected_folders(project_dirs: list[str | os.PathLike]) -> dict[Path, str]:
    """Folders a results or cache folder may neither be nor lie above: resolved path -> what it is."""
    folders = {Path("/").resolve(): "the filesystem root"}
    try:
        folders[Path.home().resolve()] = "your home folder"
    except RuntimeError:  # no HOME and no passwd entry (some containers): no home folder to protect
        pass
    for project in project_dirs:
        folders.setdefault(Path(project).resolve(), "the project folder")
    return folders


def placement_problem(path: str | os.PathLike, project_dirs: list[str | os.PathLike]) -> str | None:
    """Why ``path`` may not hold audiofold's output (the root, home, the project folder or above one), else None."""
    resolved = Path(path).resolve()
    for folder, what in protected_folders(project_dirs).items():
        if resolved == folder:
            return f"{_shown(path)} is {what} ({folder})"
        if resolved in folder.parents:
            return f"{_shown(path)} is {resolved}, a folder above {what} ({folder})"
    return None


def writable_problem(path: str | os.PathLike) -> str | None:
    """Why no file can be made in ``path`` (or the nearest existing folder above it), else None.

    Tried with a temp file: permission bits say nothing about read-only mounts, and root passes them all.
    """
    path = Path(path).absolute()
    probe = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if not probe.is_dir():
        return f"{probe} is not a folder (a file is in the way); set results_dir to a folder path"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"cannot write to {probe.resolve()} ({exc.strerror or exc}); make it writable or set results_dir to a writable folder"
    return None


def results_dir_problem(
    path: str | os.PathLike, project_dirs: list[str | os.PathLike], adopt: bool = False
) -> str | None:
    """Why ``path`` cannot be the results folder, else None (see the module docstring)."""
    problem = placement_problem(path, project_dirs)
    if problem:
        return f"{problem}; the results folder is audiofold's own, its files get overwritten: use a new folder such as results"
    problem = writable_problem(path)
    if problem:
        return problem
    path = Path(path)
    if adopt or not path.is_dir() or (path / MARKER).is_file() or (path / EARLIER_RUN).is_file():
        return None
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return None
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    return (
        f"{_shown(path)} holds {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} ({shown}) and audiofold did not "
        f"make it (no {MARKER} file): refused, its files could be overwritten or deleted. Use a new or empty "
        f"folder, or set {ADOPT_KEY}: true (e.g. `--config {ADOPT_KEY}=True`) if audiofold may overwrite them"
    )


def mark_results_dir(path: str | os.PathLike) -> None:
    """Make the results folder (if needed) and its marker: later runs know audiofold made it."""
    marker = Path(path) / MARKER
    if not marker.is_file():
        write_text(marker, "This folder holds audiofold's results: audiofold may overwrite or delete any file in it.\n")
