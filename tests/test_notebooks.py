import os
from pathlib import Path

import nbformat
import pytest

from normlab import notebooks, runtime

ROOT = Path(__file__).resolve().parents[1]


def make_notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Title")]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def test_stamp_follows_code_and_profile_but_not_prose():
    nb = make_notebook("x = 1", "print(x)")
    base = notebooks.stamp(nb, "full")
    assert notebooks.stamp(nb, "smoke") != base
    nb.cells[0].source = "# Another title"
    assert notebooks.stamp(nb, "full") == base
    nb.cells[2].source = "print(x + 1)"
    assert notebooks.stamp(nb, "full") != base


def test_unexecuted_notebook_is_not_current():
    assert not notebooks.is_current(make_notebook("x = 1"))


def test_execute_runs_under_the_profile_and_stamps(tmp_path, monkeypatch):
    monkeypatch.setenv(runtime.PROFILE_VARIABLE, "full")
    path = tmp_path / "chapter.ipynb"
    nbformat.write(make_notebook("import os", "print(os.environ['NORMLAB_PROFILE'])"), path)
    notebooks.execute(path, profile="smoke")
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[2].outputs[0]["text"] == "smoke\n"
    assert notebooks.recorded(nb)["profile"] == "smoke" and notebooks.is_current(nb)
    assert "execution" not in nb.cells[2].metadata  # no timestamps stored
    assert os.environ[runtime.PROFILE_VARIABLE] == "full"  # the caller's environment is restored
    nb.cells[2].source = "print('edited')"
    assert not notebooks.is_current(nb)


def test_the_stamp_is_taken_before_the_chapter_runs(tmp_path, monkeypatch):
    """An edit to normlab while a long chapter runs must leave it stale, not stamp it current."""
    from nbclient import NotebookClient

    order = []
    stamp = notebooks.stamp
    monkeypatch.setattr(notebooks, "stamp", lambda *args: order.append("stamp") or stamp(*args))
    monkeypatch.setattr(NotebookClient, "execute", lambda self: order.append("execute"))
    path = tmp_path / "chapter.ipynb"
    nbformat.write(make_notebook("x = 1"), path)
    notebooks.execute(path, profile="smoke")
    assert order == ["stamp", "execute"]


def test_execute_rejects_an_unknown_profile(tmp_path):
    with pytest.raises(ValueError, match="unknown profile"):
        notebooks.execute(tmp_path / "x.ipynb", profile="fast")


def test_check_reports_what_cannot_be_published(tmp_path, capsys):
    path = tmp_path / "chapter.ipynb"
    nbformat.write(make_notebook("x = 1"), path)
    assert notebooks.main(["check", str(path)]) == 1
    assert "not made by `python -m normlab.notebooks execute`" in capsys.readouterr().out

    notebooks.execute(path, profile="full")
    assert notebooks.main(["check", str(path)]) == 0
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source = "x = 2"
    assert notebooks.problems(nb) == [
        "its outputs are stale: the code cells or normlab changed since it was executed"]


def test_check_reports_error_outputs(tmp_path):
    path = tmp_path / "errors.ipynb"
    nbformat.write(make_notebook("x = 1"), path)
    notebooks.execute(path, profile="full")
    nb = nbformat.read(path, as_version=4)
    assert notebooks.problems(nb) == []
    nb.cells[1].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError",
                                                  evalue="division by zero", traceback=[])]
    assert notebooks.problems(nb) == ["code cell 1 shows ZeroDivisionError: division by zero"]


def test_execute_merges_consecutive_prints(tmp_path):
    path = tmp_path / "prints.ipynb"
    code = ("import sys, time\nprint('a', flush=True)\ntime.sleep(0.2)\nprint('b')\n"
            "print('c', file=sys.stderr)")
    nbformat.write(make_notebook(code), path)
    notebooks.execute(path, profile="smoke")
    outputs = nbformat.read(path, as_version=4).cells[1].outputs
    assert [(o.name, o.text) for o in outputs] == [("stdout", "a\nb\n"), ("stderr", "c\n")]


def test_stamp_covers_the_normlab_code_a_notebook_reaches():
    nb = make_notebook("from normlab import (\n    plots,\n    runtime,\n)",
                       "from normlab.page import glue", "plots.use_style()\nruntime.setup(0)\nglue(\"a\", 1)")
    assert notebooks.uses(nb) == ["page.glue", "plots", "plots.use_style", "runtime",
                                  "runtime.setup"]
    assert notebooks.uses(make_notebook("x = 1")) == []
    before = notebooks.stamp(nb, "full")
    assert notebooks.stamp(nb, "smoke") != before
    assert notebooks.stamp(make_notebook("x = 2"), "full") != notebooks.stamp(make_notebook("x = 1"), "full")


def test_each_chapter_is_stamped_with_the_normlab_code_it_reaches_and_no_more():
    from normlab import fingerprint

    reach = {path.name[:2]: set(fingerprint.reached(*notebooks.uses(nbformat.read(path, as_version=4))))
             for path in sorted((ROOT / "book").glob("[0-9]*.ipynb"))}
    assert all("runtime.setup" in reached for reached in reach.values())
    assert "train.run" in reach["05"] and "train.run" not in reach["02"]
    assert not any(name.startswith(("notebooks.", "readers.")) for reached in reach.values()
                   for name in reached)  # the maintainer's tools never stale a chapter
