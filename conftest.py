"""Test-suite set-up: notebooks run under the small ``smoke`` profile unless told otherwise, and
the website is built once for all the tests that read its pages; cached training runs go to a
temporary folder.

nbval's kernels inherit this environment, so every chapter re-executes quickly in CI while its
stored outputs (from the ``full`` profile) stay what the website shows.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("NORMLAB_PROFILE", "smoke")
# Training runs that the tests make go to a folder of their own, never into the reader's cache.
os.environ["NORMLAB_CACHE"] = tempfile.mkdtemp(prefix="normlab-test-runs-")
ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def website(tmp_path_factory):
    """The book built as `make book` builds it (any warning fails), without executing anything."""
    out = tmp_path_factory.mktemp("website")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", "--all", str(ROOT),
         "--path-output", str(out), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, cwd=ROOT)
    return SimpleNamespace(returncode=result.returncode, log=result.stdout + result.stderr,
                           html=out / "_build" / "html")
