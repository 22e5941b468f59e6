import json

import nbformat
import pytest

from normlab import notebooks, page


def test_glue_hands_python_numbers_to_myst_nb(monkeypatch):
    import myst_nb
    import numpy as np

    seen = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: seen.update({name: value}))
    page.glue("x", np.float32(0.5))
    page.glue("n", np.int64(3))
    assert seen == {"x": 0.5, "n": 3}
    assert type(seen["x"]) is float and type(seen["n"]) is int
    page.glue("v", "**higher** by 1 point", markdown=True)
    assert seen["v"].data == "**higher** by 1 point" and type(seen["v"]).__name__ == "Markdown"


def test_expect_error_prints_the_error_and_lets_the_notebook_go_on(tmp_path):
    path = tmp_path / "deliberate.ipynb"
    code = ("from normlab.page import expect_error\n"
            "with expect_error(ValueError):\n    int('x')\nprint('next')")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    notebooks.execute(path, profile="smoke")
    (output,) = nbformat.read(path, as_version=4).cells[0].outputs
    assert output.text == "ValueError: invalid literal for int() with base 10: 'x'\nnext\n"


def test_expect_error_fails_when_nothing_is_raised_or_another_error_is():
    with pytest.raises(AssertionError, match="expected ValueError, but nothing was raised"):
        with page.expect_error(ValueError):
            pass
    with pytest.raises(KeyError):
        with page.expect_error(ValueError):
            raise KeyError("not the expected kind")


def test_verdict_prints_and_returns_the_comparison(capsys):
    comparison = page.verdict("gain", "a against b", [0.61, 0.62, 0.63], [0.50, 0.51, 0.52])
    assert comparison.resolved and comparison.sentence.startswith("higher by 11.0 points")
    assert capsys.readouterr().out == f"a against b:\n  {comparison.sentence}\n"


def test_the_ledger_rows_come_from_the_verdicts_with_one_status_rule(monkeypatch, capsys):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: glued.update({name: value}))
    ledger = page.Ledger("ch9")
    higher = page.stats.compare([0.61, 0.62, 0.63], [0.50, 0.51, 0.52])
    ledger.add("Batch norm | helps", source="a paper", measurement="accuracy", evidence=higher,
               section="sec-a")
    row = ledger.add("It hurts", source="an article", measurement="accuracy", evidence=higher,
                     section="sec-a", expected=-1)
    assert row.status == "not reproduced" and row.result == higher.sentence
    ledger.add("Exact", source="the book", measurement="a worked example", evidence=True,
               section="sec-b", result="-1.2247449 to the last digit")
    with pytest.raises(ValueError, match="result="):
        ledger.add("Exact", source="s", measurement="m", evidence=False, section="sec-b")
    assert ledger.counts() == {"reproduced": 2, "not reproduced": 1}
    ledger.show()
    assert capsys.readouterr().out == "ch9 ledger: 3 claims: 2 reproduced, 1 not reproduced\n"
    table = glued["ch9_ledger"].data.split("\n")
    assert table[0] == "| claim | source | measurement | result | status |"
    assert table[2].startswith("| Batch norm \\| helps | a paper | accuracy | higher by 11.0 points")
    assert table[2].endswith("| reproduced |")
    claims = json.loads(glued["ch9_ledger_rows"])
    assert [c["status"] for c in claims] == ["reproduced", "not reproduced", "reproduced"]
    assert claims[2]["section"] == "sec-b"
    with pytest.raises(ValueError, match="no claims"):
        page.Ledger("ch1").show()
