"""The maintainer's tool: execute and stamp the chapters, check them, write their reader notebooks.

The website shows the outputs stored in each notebook. They are trustworthy only if they were
produced by the code now in the repository: :func:`execute` runs a notebook top to bottom under a
profile and records a stamp (a hash of its code cells, the ``normlab`` code they reach and the profile:
:func:`stamp`) in the notebook's metadata; :func:`is_current` recomputes it. Usage::

    python -m normlab.notebooks execute book/*.ipynb            # the full profile
    python -m normlab.notebooks check book/*.ipynb              # what cannot be published

The reader notebooks (:mod:`normlab.readers`), the chapters' plain-Markdown copies that Colab and
JupyterLab open, and the evidence page (:mod:`normlab.evidence`), every chapter's claims ledger in
one table, are written by ``execute`` and by::

    python -m normlab.notebooks readers book/*.ipynb            # notebooks/book/*.ipynb
    python -m normlab.notebooks evidence                        # book/evidence.md
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import sys
import time
from pathlib import Path

from normlab import evidence, fingerprint, plots, readers
from normlab.runtime import PROFILE_VARIABLE, PROFILES, hardware

METADATA_KEY = "normlab"


def _code_cells(nb) -> list[str]:
    return ["\n".join(line.rstrip() for line in c.source.strip().splitlines())
            for c in nb.cells if c.cell_type == "code"]


def uses(nb) -> list[str]:
    """The ``normlab`` definitions a notebook's code names ("plots.band", "page.glue", ...)."""
    return fingerprint.chapter_roots("\n".join(_code_cells(nb)))


def stamp(nb, profile: str) -> str:
    """Hash of what determines the outputs: the profile, the code cells and the normlab code they
    can reach (:func:`normlab.fingerprint.code`: docstrings aside, per definition)."""
    digest = hashlib.sha256(profile.encode())
    for source in _code_cells(nb):
        digest.update(b"\0cell\0" + source.encode())
    digest.update(b"\0normlab\0" + fingerprint.code(*uses(nb)).encode())
    return digest.hexdigest()


def recorded(nb) -> dict:
    """The stamp and profile stored by :func:`execute` (empty if never executed by it)."""
    return dict(nb.metadata.get(METADATA_KEY, {}))


def is_current(nb) -> bool:
    """True when the stored outputs were made by the current code under the recorded profile."""
    info = recorded(nb)
    return bool(info) and info.get("stamp") == stamp(nb, info.get("profile", ""))


def problems(nb) -> list[str]:
    """What keeps a notebook's stored outputs from being published: not made by :func:`execute`
    with the full profile, stale, or showing an error (a deliberate one goes through
    :func:`normlab.page.expect_error`, which prints it instead of raising)."""
    info = recorded(nb)
    if info.get("profile") != "full":
        found = ["its outputs were not made by `python -m normlab.notebooks execute` (full profile)"]
    elif not is_current(nb):
        found = ["its outputs are stale: the code cells or normlab changed since it was executed"]
    else:
        found = []
    for number, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), start=1):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors:
            found.append(f"code cell {number} shows {errors[0].ename}: {errors[0].evalue}")
    return found


def _require_known(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")


def run(nb, directory: Path | str, profile: str, timeout: int = 3600, **environment: str) -> float:
    """Execute ``nb`` in memory as a reader's Jupyter would, from ``directory``, under ``profile``
    and extra environment variables (``NORMLAB_CACHE=...``); returns the seconds it took."""
    from nbclient import NotebookClient

    _require_known(profile)
    environment = {PROFILE_VARIABLE: profile, **environment}
    previous = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)  # the kernel inherits this process's environment
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(directory)}}).execute()
    finally:
        for name, value in previous.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
    return time.perf_counter() - start


def execute(path: Path | str, profile: str = "full", timeout: int = 3600) -> float:
    """Run a notebook in place under ``profile``, stamp it and save it; returns seconds taken."""
    import nbformat

    _require_known(profile)  # before reading the notebook: the mistake is the profile
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    # Stamped from the code as it is now: an edit made while the chapter runs leaves it stale.
    # The machine and the date go into the reader notebook's note on whose numbers the text gives.
    metadata = {"profile": profile, "uses": uses(nb), "stamp": stamp(nb, profile),
                "machine": hardware(), "executed": datetime.date.today().isoformat()}
    seconds = run(nb, path.parent, profile, timeout, **{plots.CHECK_VARIABLE: "1"})  # published figures
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
    nb.metadata[METADATA_KEY] = metadata
    nbformat.write(nb, path)
    return seconds


def _merge_streams(outputs):
    """Join consecutive prints to the same stream, so a re-run does not reshuffle the diff."""
    merged = []
    for out in outputs:
        last = merged[-1] if merged else None
        if (out.output_type == "stream" and last is not None and last.output_type == "stream"
                and last.name == out.name):
            last.text += out.text
        else:
            merged.append(out)
    return merged


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    commands = {"execute": _execute_command, "readers": _readers_command, "check": _check_command,
                "evidence": _evidence_command}
    return commands[args.command](args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m normlab.notebooks", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("execute", help="execute notebooks in place, stamp them, write their readers")
    run.add_argument("--profile", default="full", choices=PROFILES)
    run.add_argument("notebooks", nargs="+", type=Path)
    write = sub.add_parser("readers", help="write the reader notebooks (plain Markdown) of chapters")
    write.add_argument("notebooks", nargs="+", type=Path)
    check = sub.add_parser("check", help="list notebooks whose stored outputs cannot be published")
    check.add_argument("notebooks", nargs="+", type=Path)
    sub.add_parser("evidence", help=f"write the evidence page ({evidence.PAGE}) from the chapters' ledgers")
    return parser


def _execute_command(args) -> int:
    failed = False
    for path in args.notebooks:
        print(f"{path}: executing with the {args.profile} profile ...", flush=True)
        print(f"{path}: done in {execute(path, args.profile):.0f} s", flush=True)
        root = readers.book_root(path)
        if root is not None:  # the evidence page first: the reader notebooks link to it
            print(f"{path}: wrote {evidence.write(root).relative_to(root)}")
            failed = _readers_command(argparse.Namespace(notebooks=[path])) or failed
    return 1 if failed else 0


def _evidence_command(args) -> int:
    root = readers.book_root(Path.cwd() / "_toc.yml")
    if root is None:
        print("run this in the book's folder (where _config.yml and _toc.yml are)")
        return 1
    print(f"wrote {evidence.write(root).relative_to(root)}")
    return 0


def _readers_command(args) -> int:
    failed = False
    for path in args.notebooks:
        try:
            target = readers.write_reader(path)
        except ValueError as error:
            print(f"{path}: cannot write the reader notebook: {error}")
            failed = True
        else:
            print(f"{path}: wrote {target.relative_to(readers.book_root(path))}")
    return 1 if failed else 0


def _check_command(args) -> int:
    import nbformat

    stale = unreadable = False
    for path in args.notebooks:
        found = problems(nbformat.read(path, as_version=4))
        unreadable_here = readers.reader_problems(path)
        for problem in found + unreadable_here:
            print(f"{path}: {problem}")
        stale, unreadable = stale or bool(found), unreadable or bool(unreadable_here)
    for root in {readers.book_root(path) for path in args.notebooks} - {None}:
        for problem in evidence.problems(root):
            print(problem)
            unreadable = True
    if stale:
        print("Fix the code, then run: make execute NOTEBOOKS=<notebook>")
    return 1 if stale or unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
