"""The book's evidence page: every chapter's claims ledger in one table.

Each chapter ends with its ledger (:class:`normlab.page.Ledger`), glued as rows of JSON beside
the table the chapter shows. This module reads those rows from the executed chapters, in the
order of the table of contents, and writes ``book/evidence.md``, so the page is as current as the
chapters: ``python -m normlab.notebooks evidence`` writes it (``execute`` does too) and
``python -m normlab.notebooks check`` fails when it differs from what the chapters say.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

from normlab import readers, stats
from normlab.page import ROWS_SUFFIX, table_cell

PAGE = "book/evidence.md"
STATUSES = (stats.REPRODUCED, stats.NOT_REPRODUCED, stats.NOT_RESOLVED)

INTRO = """\
<!-- written by `python -m normlab.notebooks evidence` from the chapters' ledgers: do not edit -->
# The evidence

Every chapter ends with a table, "What this chapter showed": one row for each claim it set out to
test, a paper's, a source article's or the book's own, with the measurement, the result and its
status. The rows are made from the verdicts the chapter computed on its page, by one rule
(`normlab.stats.status`):

- **reproduced**: the confidence interval of the difference over seeds excludes zero on the side
  the claim predicts, or an exact check (a worked example, to the last digit) holds. The
  interval is a 95 % one, shared with the other verdicts of its section where the chapter
  compares several things at once (each of k verdicts then gets a 1 - 0.05/k interval);
- **not reproduced**: the interval excludes zero on the other side, or the exact check fails;
- **not resolved at n seeds**: the interval contains zero. The experiment neither confirms nor
  refutes the claim; the chapter's ledger gives the interval, which bounds the effect.

This page collects the rows of every chapter, in the order of the book. The statuses are those of
the run the website shows ({dataset}); a run on CIFAR-10 or on a GPU computes its own.
"""


def _chapters(root: Path):
    """(chapter number, notebook) for each numbered chapter, in the book's order."""
    import nbformat

    for page, number in sorted(readers.chapter_numbers(root).items(), key=lambda item: item[1]):
        path = root / f"{page}.ipynb"
        if path.exists():
            yield number, nbformat.read(path, as_version=4)


def ledger_rows(nb) -> list[dict] | None:
    """The claims a chapter's ledger glued, or None for a chapter without a ledger."""
    for name, value in readers.glued_values(nb).items():
        if name.endswith(ROWS_SUFFIX):  # a JSON string, stored as its Python repr
            return json.loads(ast.literal_eval(value["text/plain"]))
    return None


def markdown(root: Path | str) -> str:
    """The evidence page as :func:`write` writes it."""
    root = Path(root)
    rows, without, datasets = [], [], set()
    for number, nb in _chapters(root):
        claims = ledger_rows(nb)
        if claims is None:
            without.append(number)
            continue
        datasets.add(readers.glued_dataset(readers.glued_values(nb)))
        rows += [(number, claim) for claim in claims]
    datasets.discard(None)
    counts = Counter(stats.status_kind(claim["status"]) for _, claim in rows)
    text = INTRO.format(dataset=", ".join(sorted(datasets)) or "the dataset each chapter names")
    text += "\n| status | claims |\n|---|---:|\n"
    text += "".join(f"| {status} | {counts.get(status, 0)} |\n" for status in STATUSES)
    text += f"| **all** | **{len(rows)}** |\n\n"
    text += "| claim (a link to its section) | source | chapter | status |\n|---|---|---:|---|\n"
    text += "".join(f"| {{ref}}`{_role_text(c['claim'])} <{c['section']}>` | {table_cell(c['source'])} "
                    f"| {number} | {table_cell(c['status'])} |\n" for number, c in rows)
    if without:
        names = ", ".join(map(str, without[:-1])) + (" and " if len(without) > 1 else "") + str(without[-1])
        text += (f"\nChapter{'s' if len(without) > 1 else ''} {names} "
                 f"{'have' if len(without) > 1 else 'has'} no ledger yet.\n")
    return text


def _role_text(text: str) -> str:
    """Text as the title of a ``{ref}`` role: one line, pipes escaped, no angle brackets or
    backquotes (they would end the role)."""
    return table_cell(text).replace("<", "(").replace(">", ")").replace("`", "'")


def write(root: Path | str) -> Path:
    """Write the evidence page of the book at ``root``; returns its path."""
    target = Path(root) / PAGE
    target.write_text(markdown(root), encoding="utf-8")
    return target


def problems(root: Path | str) -> list[str]:
    """Why the committed evidence page is not what the chapters' ledgers make now, if it is not."""
    target = Path(root) / PAGE
    fix = "run: python -m normlab.notebooks evidence"
    if not target.exists():
        return [f"the evidence page {PAGE} is missing; {fix}"]
    if target.read_text(encoding="utf-8") != markdown(root):
        return [f"the evidence page {PAGE} differs from the chapters' ledgers; {fix}"]
    return []
