"""Test-suite set-up: notebooks run under the small ``smoke`` profile unless told otherwise, on
CIFAR-shaped images, and the website is built once for all the tests that read its pages; cached
training runs go to a temporary folder.

nbval's kernels inherit this environment, so every chapter re-executes quickly in CI while its
stored outputs (from the ``full`` profile, on the offline Fashion-MNIST) stay what the website
shows. Each chapter therefore runs once on each layout: 28x28x1 images under the full profile,
in the execution that made its stored outputs (``tests/test_book.py`` checks that they come from
the current code), and 32x32x3 images with labels of shape ``(N, 1)``, as where CIFAR-10 downloads,
under nbval here: an IPython start-up file (``tests/synthetic_cifar10.py``) makes
``keras.datasets.cifar10`` return synthetic images in CIFAR-10's layout.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent

os.environ.setdefault("NORMLAB_PROFILE", "smoke")
# Training runs that the tests make go to a folder of their own, never into the reader's cache.
os.environ["NORMLAB_CACHE"] = tempfile.mkdtemp(prefix="normlab-test-runs-")
_IPYTHON = Path(tempfile.mkdtemp(prefix="normlab-test-ipython-"))
(_IPYTHON / "profile_default" / "startup").mkdir(parents=True)
shutil.copy(ROOT / "tests" / "synthetic_cifar10.py",
            _IPYTHON / "profile_default" / "startup" / "00-synthetic-cifar10.py")
os.environ["IPYTHONDIR"] = str(_IPYTHON)


@pytest.fixture(scope="session")
def website(tmp_path_factory):
    """The book built as `make book` builds it (any warning fails), without executing anything:
    once per run, by the first of pytest-xdist's workers that asks for it, while the others wait."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder that every worker's own folder is in
    out, log = shared / "website", shared / "website.log"
    with open(shared / "website.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not log.exists():
            result = subprocess.run(
                [str(Path(sys.executable).parent / "jupyter-book"), "build", "--all", str(ROOT),
                 "--path-output", str(out), "-W", "-n", "--keep-going"],
                capture_output=True, text=True, cwd=ROOT)
            log.write_text(f"{result.returncode}\n{result.stdout}{result.stderr}")
    returncode, text = log.read_text().split("\n", 1)
    return SimpleNamespace(returncode=int(returncode), log=text, html=out / "_build" / "html")
