"""Test-suite set-up: notebooks run under the small ``smoke`` profile unless told otherwise.

nbval's kernels inherit this environment, so every chapter re-executes quickly in CI while its
stored outputs (from the ``full`` profile) stay what the website shows.
"""

import os

os.environ.setdefault("NORMLAB_PROFILE", "smoke")
