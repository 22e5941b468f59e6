"""Notebook bookkeeping: glue results into the prose, show errors, execute and stamp the chapters.

:func:`glue` hands a computed value to the website's prose (myst-nb's ``{glue}`` role), so every
number in the text comes from the run; where myst-nb is absent (Colab) it does nothing.
:func:`expect_error` shows an error a chapter means to show without stopping "Run all".

The website shows the outputs stored in each notebook. They are trustworthy only if they were
produced by the code now in the repository: :func:`execute` runs a notebook top to bottom under a
profile and records a stamp (a hash of its code cells, the ``normlab`` modules they import and the
profile) in the notebook's metadata; :func:`is_current` recomputes it. Usage::

    python -m normlab.notebooks execute book/*.ipynb            # the full profile
    python -m normlab.notebooks check book/*.ipynb              # what cannot be published
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import time
import traceback
from pathlib import Path

from normlab.runtime import PROFILE_VARIABLE, PROFILES

METADATA_KEY = "normlab"
PACKAGE_DIR = Path(__file__).resolve().parent


def glue(name: str, value, display: bool = False) -> None:
    """Make ``value`` available to the prose as ``{glue:text}`name```; numbers become Python types.

    NumPy scalars are converted because the website formats glued numbers (``name:.3f``) by
    parsing their stored text, which must read ``0.5``, not ``np.float32(0.5)``.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # e.g. on Colab: nothing renders glued values there
        return
    myst_glue(name, value, display=display)


@contextlib.contextmanager
def expect_error(error_type: type[BaseException] = Exception):
    """Run a block that must fail, and print its error as Python would, without a traceback.

    Explained in chapter 3. A cell that raises stops "Run all" on Colab and in JupyterLab, which
    ignore the cell tags the website uses; inside ``with expect_error(ValueError):`` the cell
    shows the error and the notebook goes on. A block that does not raise is a bug in the
    chapter, so it fails loudly with an ``AssertionError``.
    """
    try:
        yield
    except error_type as error:
        print("".join(traceback.format_exception_only(type(error), error)).rstrip())
    else:
        raise AssertionError(f"expected {error_type.__name__}, but nothing was raised")


def _code_cells(nb) -> list[str]:
    return ["\n".join(line.rstrip() for line in c.source.strip().splitlines())
            for c in nb.cells if c.cell_type == "code"]


_IMPORT = re.compile(r"^\s*(?:from\s+normlab(?:\.(\w+))?\s+import\s+(\([\w\s,]+\)|[\w \t,]+)"
                     r"|import\s+normlab\.(\w+))", re.MULTILINE)


def _imported_modules(code: str) -> set[str]:
    found = set()
    for module, names, plain in _IMPORT.findall(code):
        if module or plain:
            found.add(module or plain)
        else:  # from normlab import a, b
            found.update(n for n in re.findall(r"\w+", names) if (PACKAGE_DIR / f"{n}.py").exists())
    return found


def normlab_modules(nb) -> list[str]:
    """The ``normlab`` modules a notebook runs: those its code imports, and theirs in turn.

    Only these enter the stamp, so changing a module a chapter never loads leaves it current.
    """
    todo, seen = _imported_modules("\n".join(_code_cells(nb))), {"__init__"}
    while todo:
        module = todo.pop()
        if module not in seen and (PACKAGE_DIR / f"{module}.py").exists():
            seen.add(module)
            todo |= _imported_modules((PACKAGE_DIR / f"{module}.py").read_text())
    return sorted(seen)


def stamp(nb, profile: str) -> str:
    """Hash of what determines the outputs: profile, code cells, the ``normlab`` modules they run."""
    digest = hashlib.sha256(profile.encode())
    for source in _code_cells(nb):
        digest.update(b"\0cell\0" + source.encode())
    for module in normlab_modules(nb):
        source = (PACKAGE_DIR / f"{module}.py").read_bytes().replace(b"\r\n", b"\n")
        digest.update(b"\0file\0" + module.encode() + b"\0" + source)
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
    with the full profile, stale, or showing an error (a deliberate one uses :func:`expect_error`,
    which prints it instead of raising)."""
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


def execute(path: Path | str, profile: str = "full", timeout: int = 3600) -> float:
    """Run a notebook in place under ``profile``, stamp it and save it; returns seconds taken."""
    import nbformat
    from nbclient import NotebookClient

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    previous = os.environ.get(PROFILE_VARIABLE)
    os.environ[PROFILE_VARIABLE] = profile
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if previous is None:
            del os.environ[PROFILE_VARIABLE]
        else:
            os.environ[PROFILE_VARIABLE] = previous
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
    nb.metadata[METADATA_KEY] = {"profile": profile, "modules": normlab_modules(nb),
                                 "stamp": stamp(nb, profile)}
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
    parser = argparse.ArgumentParser(prog="python -m normlab.notebooks", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("execute", help="execute notebooks in place and stamp them")
    run.add_argument("--profile", default="full", choices=PROFILES)
    run.add_argument("notebooks", nargs="+", type=Path)
    check = sub.add_parser("check", help="list notebooks whose stored outputs cannot be published")
    check.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)

    if args.command == "execute":
        for path in args.notebooks:
            print(f"{path}: executing with the {args.profile} profile ...", flush=True)
            print(f"{path}: done in {execute(path, args.profile):.0f} s", flush=True)
        return 0
    import nbformat

    failed = False
    for path in args.notebooks:
        for problem in problems(nbformat.read(path, as_version=4)):
            print(f"{path}: {problem}")
            failed = True
    if failed:
        print("Fix the code, then run: make execute NOTEBOOKS=<notebook>")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
