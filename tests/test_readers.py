"""Reader notebooks: the chapters' copies for Colab and JupyterLab, in plain Markdown.

Unit tests of each conversion run on a small book written into a temporary folder; the tests at
the end check the book's own reader notebooks, and the numbers against a build of the website.
"""

import html
import json
import re
from pathlib import Path

import nbformat
import pytest
from myst_nb.core.variables import format_plain_text

from normlab import notebooks, readers

ROOT = Path(__file__).resolve().parents[1]
URL = "https://example.org/mini/"
REFERENCES = URL + "book/references.html"
PREFIX = "application/papermill.record/"

CONFIG = f"""\
title: Mini Book
html:
  baseurl: {URL}
repository:
  url: https://github.com/owner/mini
  path_to_book: notebooks
  branch: main
bibtex_bibfiles:
  - book/references.bib
"""
TOC = """\
format: jb-book
root: book/intro
parts:
  - caption: One
    numbered: true
    chapters:
      - file: book/01_first
  - caption: Two
    numbered: true
    chapters:
      - file: book/02_second
  - caption: Back matter
    chapters:
      - file: book/references
"""
BIB = r"""
@article{solo2009,
  author = {Krizhevsky, Alex}, title = {Tiny Images}, year = {2009}
}
@article{duo2015,
  author = {Ioffe, Sergey and Szegedy, Christian}, title = {Batch Normalization}, year = {2015}
}
@article{trio2018,
  author = {Santurkar, Shibani and Tsipras, Dimitris and Ilyas, Andrew}, title = {How?}, year = {2018}
}
@article{umlaut1998,
  author = {M{\"u}ller, Klaus-Robert}, title = {Efficient BackProp}, year = {1998}
}
@misc{anonymous,
  title = {Normalization Layer in Keras}, note = {Undated}
}
"""
SETUP = "# Setup: install normlab where it is missing\nimport normlab"


def glue_output(name, text, display=False):
    prefix = "" if display else PREFIX
    return nbformat.v4.new_output("display_data", data={prefix + "text/plain": text},
                                  metadata={"scrapbook": {"name": name, "mime_prefix": prefix}})


def figure_cell(name, caption, source="plot()"):
    cell = nbformat.v4.new_code_cell(source, id=f"{name}-cell")
    cell.metadata["mystnb"] = {"figure": {"name": name, "caption": caption}}
    return cell


def chapter(*markdown, title="# Second chapter", outputs=(), cells=()):
    """A chapter: H1, setup cell (with ``outputs``), the given Markdown cells, then ``cells``."""
    nb = nbformat.v4.new_notebook()
    setup = nbformat.v4.new_code_cell(SETUP, id="setup")
    setup.outputs = list(outputs)
    nb.cells = [nbformat.v4.new_markdown_cell(title, id="title"), setup]
    nb.cells += [nbformat.v4.new_markdown_cell(text, id=f"md{i}") for i, text in enumerate(markdown)]
    nb.cells += list(cells)
    nb.metadata["normlab"] = {"profile": "full", "modules": ["__init__"], "stamp": "abc123"}
    return nb


@pytest.fixture
def mini(tmp_path):
    """A two-chapter book; chapter 2 has equations eq-a, eq-b and figures fig-a, fig-b."""
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text(CONFIG)
    (tmp_path / "_toc.yml").write_text(TOC)
    (tmp_path / "book" / "references.bib").write_text(BIB)
    (tmp_path / "book" / "intro.md").write_text("# Mini Book\n")
    (tmp_path / "book" / "references.md").write_text("# References\n\n```{bibliography}\n```\n")
    first = chapter("$$\nx = 1\n$$ (eq-first)", title="# First chapter",
                    cells=[figure_cell("fig-first", "The first figure.")])
    nbformat.write(first, tmp_path / "book" / "01_first.ipynb")
    second = chapter("$$\na = 1\n$$ (eq-a)\n\ntext\n\n$$ b = 2 $$ (eq-b)\n\n$$\nc\n$$",
                     cells=[figure_cell("fig-a", "A."), figure_cell("fig-b", "B.")])
    nbformat.write(second, tmp_path / "book" / "02_second.ipynb")
    return tmp_path


@pytest.fixture
def book(mini):
    return readers.load_book(mini)


def convert(book, *markdown, outputs=(), cells=()):
    """The reader Markdown of one Markdown cell (the third cell: after the title and setup cells)."""
    nb = readers.reader(chapter(*markdown, outputs=outputs, cells=cells), "book/02_second", book)
    return nb.cells[2].source if markdown else nb


# --- the book --------------------------------------------------------------------------------------

def test_book_numbers_chapters_across_numbered_parts_only(book):
    assert book.chapters == {"book/01_first": 1, "book/02_second": 2}
    assert book.pages["book/02_second"] == "Second chapter"
    assert book.references_page == "book/references"
    assert book.url("book/02_second") == URL + "book/02_second.html"


def test_book_numbers_figures_and_labelled_equations_per_chapter(book):
    numbers = {label: (found.kind, found.number, found.page) for label, found in book.labels.items()}
    assert numbers == {"eq-first": ("equation", "1.1", "book/01_first"),
                       "fig-first": ("figure", "1.1", "book/01_first"),
                       "eq-a": ("equation", "2.1", "book/02_second"),
                       "eq-b": ("equation", "2.2", "book/02_second"),
                       "fig-a": ("figure", "2.1", "book/02_second"),
                       "fig-b": ("figure", "2.2", "book/02_second")}


def test_book_needs_the_website_address(mini):
    (mini / "_config.yml").write_text(CONFIG.replace(f"  baseurl: {URL}\n", "  use_issues_button: true\n"))
    with pytest.raises(ValueError, match=r"html\.baseurl"):
        readers.load_book(mini)


# --- glue ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "spec", "expected"), [
    ("0.123456", ".3f", "0.123"),
    ("0.123456", None, "0.123456"),
    ("3", "d", "3"),
    ("0.5", ".1%", "50.0%"),
    ("1234.5", ",.0f", "1,234"),  # Python rounds half to even, as the website does
    ("'Fashion-MNIST'", None, "Fashion-MNIST"),
    ("'0.886 ± 0.001'", None, "0.886 ± 0.001"),
    ("'0.5'", ".2f", "0.50"),
    ("'batch_fused'", "", r"batch\_fused"),
])
def test_glue_text_is_formatted_as_on_the_website(book, text, spec, expected):
    role = "{glue:text}`x`" if spec is None else f"{{glue:text}}`x:{spec}`"
    assert convert(book, f"value {role}.", outputs=[glue_output("x", text)]) == f"value {expected}."


def test_glue_of_a_missing_or_unformattable_value_is_an_error(book):
    with pytest.raises(ValueError, match="nothing glued as 'y'"):
        convert(book, "{glue:text}`y`", outputs=[glue_output("x", "1")])
    with pytest.raises(ValueError, match="cannot format the glued 'x'"):
        convert(book, "{glue:text}`x:.3f`", outputs=[glue_output("x", "np.float32(0.5)")])


def test_glue_md_goes_in_as_markdown(book):
    output = nbformat.v4.new_output(
        "display_data", data={PREFIX + "text/markdown": "**higher by 1.2 points** (95 % CI 0.3 to 2.1)",
                              PREFIX + "text/plain": "<IPython.core.display.Markdown object>"},
        metadata={"scrapbook": {"name": "v", "mime_prefix": PREFIX}})
    assert convert(book, "BN was {glue:md}`v`.", outputs=[output]) == (
        "BN was **higher by 1.2 points** (95 % CI 0.3 to 2.1).")
    with pytest.raises(ValueError, match="text/markdown"):
        convert(book, "{glue:md}`x`", outputs=[glue_output("x", "1")])


def test_glue_outputs_are_dropped_and_other_outputs_kept(book):
    printed = nbformat.v4.new_output("stream", name="stdout", text="hello\n")
    shown = glue_output("shown", "2", display=True)
    source = chapter("{glue:text}`x` {glue:text}`shown`", outputs=[glue_output("x", "1"), printed, shown])
    nb = readers.reader(source, "book/02_second", book)
    assert nb.cells[2].source == "1 2"
    assert nb.cells[1].outputs == [printed, shown]  # a glue with display=True shows on the website too


# --- citations -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("role", "expected"), [
    ("{cite}`solo2009`", f"[[Krizhevsky, 2009]({REFERENCES})]"),
    ("{cite}`duo2015`", f"[[Ioffe and Szegedy, 2015]({REFERENCES})]"),
    ("{cite}`umlaut1998`", f"[[Müller, 1998]({REFERENCES})]"),
    ("{cite}`anonymous`", f"[[*Normalization Layer in Keras*, n.d.]({REFERENCES})]"),
    ("{cite}`duo2015,trio2018`",
     f"[[Ioffe and Szegedy, 2015]({REFERENCES}), [Santurkar *et al.*, 2018]({REFERENCES})]"),
    ("{cite:t}`duo2015`", f"Ioffe and Szegedy [[2015]({REFERENCES})]"),
    ("{cite:t}`trio2018`", f"Santurkar *et al.* [[2018]({REFERENCES})]"),
    ("{cite:t}`anonymous`", f"*Normalization Layer in Keras* [[n.d.]({REFERENCES})]"),
    ("{cite:t}`solo2009, duo2015`",
     f"Krizhevsky [[2009]({REFERENCES})], Ioffe and Szegedy [[2015]({REFERENCES})]"),
])
def test_citations_read_as_on_the_website_and_link_to_the_references(book, role, expected):
    assert convert(book, f"As {role} shows.") == f"As {expected} shows."


def test_citing_an_unknown_key_is_an_error(book):
    with pytest.raises(ValueError, match="cannot cite 'nobody2000': it is not in the bibliography"):
        convert(book, "{cite}`nobody2000`")


# --- cross-references ------------------------------------------------------------------------------

def test_numref_and_eq_give_the_website_numbers(book):
    text = "{numref}`fig-b` and eq. {eq}`eq-a`, {eq}`eq-b`; {numref}`Figure %s <fig-a>`."
    assert convert(book, text) == "Fig. 2.2 and eq. (2.1), (2.2); Figure 2.1."


def test_references_to_another_chapter_link_to_its_page(book):
    text = "{numref}`fig-first` and {eq}`eq-first`"
    assert convert(book, text) == (f"[Fig. 1.1]({URL}book/01_first.html#fig-first) and "
                                   f"[(1.1)]({URL}book/01_first.html#equation-eq-first)")


def test_a_reference_to_an_unknown_label_is_an_error(book):
    with pytest.raises(ValueError, match="no figure labelled 'fig-none'"):
        convert(book, "{numref}`fig-none`")
    with pytest.raises(ValueError, match="no equation labelled 'fig-a'"):
        convert(book, "{eq}`fig-a`")


@pytest.mark.parametrize(("role", "expected"), [
    ("{doc}`01_first`", f"[First chapter]({URL}book/01_first.html)"),
    ("{doc}`the first one <01_first>`", f"[the first one]({URL}book/01_first.html)"),
    ("{doc}`/book/references`", f"[References]({URL}book/references.html)"),
    ("{doc}`../book/intro`", f"[Mini Book]({URL}book/intro.html)"),
])
def test_doc_links_to_the_page_with_its_title(book, role, expected):
    assert convert(book, role) == expected


def test_doc_of_a_page_outside_the_toc_is_an_error(book):
    with pytest.raises(ValueError, match=r"not a page of _toc\.yml"):
        convert(book, "{doc}`03_missing`")


# --- targets, equations, directives, links ---------------------------------------------------------

def test_targets_and_comments_are_removed(book):
    assert convert(book, "(sec-data)=\n## The data\n% a note to maintainers\nText.") == "## The data\nText."


def test_labelled_equations_carry_their_number_as_a_tag(book):
    markdown = convert(book, "See\n\n$$\na = 1\n$$ (eq-a)\n\nand\n$$ b = 2 $$ (eq-b)\n\n$$\nc\n$$")
    assert markdown == "See\n\n$$\na = 1\n\\tag{2.1}\n$$\n\nand\n$$ b = 2 \\tag{2.2} $$\n\n$$\nc\n$$"


def test_admonitions_become_blockquotes(book):
    note = "Before.\n\n```{note}\nOn a GPU, see {numref}`fig-a`.\nSecond line.\n```\n\nAfter."
    assert convert(book, note) == "Before.\n\n> **Note.** On a GPU, see Fig. 2.1.\n> Second line.\n\nAfter."
    colon = ":::{warning}\n:class: dropdown\nCareful.\n\nReally.\n:::"
    assert convert(book, colon) == "> **Warning.** Careful.\n>\n> Really."
    titled = "````{admonition} Why {eq}`eq-a`?\nBecause.\n```python\nx = 1\n```\n````"
    assert convert(book, titled) == "> **Why (2.1)?** Because.\n> ```python\n> x = 1\n> ```"


def test_code_is_left_as_written(book):
    fence = "```python\nglue('{cite}`x`')\n```\n\nWrite ``{cite}`key` `` in a chapter."
    assert convert(book, fence) == fence


def test_unknown_roles_and_directives_are_errors_that_name_them(book):
    with pytest.raises(ValueError, match=r"the role \{ref\} has no plain-Markdown form"):
        convert(book, "See {ref}`sec-data`.")
    with pytest.raises(ValueError, match=r"the directive \{figure\} has no plain-Markdown form"):
        convert(book, "```{figure} images/a.png\nCaption\n```")


@pytest.mark.parametrize(("link", "expected"), [
    ("[References](references.md)", f"[References]({URL}book/references.html)"),
    ("[chapter 1](01_first.ipynb#the-data)", f"[chapter 1]({URL}book/01_first.html#the-data)"),
    ("[the code](../src/normlab/data.py)", "[the code](https://github.com/owner/mini/blob/main/src/normlab/data.py)"),
    ("![a plot](images/a.png)", "![a plot](https://github.com/owner/mini/raw/main/book/images/a.png)"),
    ("[Keras](https://keras.io/api/)", "[Keras](https://keras.io/api/)"),
    ("[below](#the-data)", "[below](#the-data)"),
])
def test_relative_links_go_to_the_website_or_the_repository(book, link, expected):
    assert convert(book, f"See {link}.") == f"See {expected}."


# --- the notebook ----------------------------------------------------------------------------------

def test_figures_get_a_numbered_caption_cell(book):
    cells = [figure_cell("fig-a", "Accuracy, as in {numref}`fig-first` and {cite:t}`duo2015`."),
             nbformat.v4.new_code_cell("x = 1", id="after")]
    nb = convert(book, cells=cells)
    assert [c.id for c in nb.cells] == ["title", "setup", "fig-a-cell", "fig-a-cell-caption", "after"]
    caption = nb.cells[3]
    assert caption.cell_type == "markdown"
    assert caption.source == (f"**Fig. 2.1.** Accuracy, as in [Fig. 1.1]({URL}book/01_first.html#fig-first)"
                              f" and Ioffe and Szegedy [[2015]({REFERENCES})].")
    assert "mystnb" not in nb.cells[2].metadata


def test_reader_line_setup_cell_and_metadata(book):
    nb = convert(book, cells=[nbformat.v4.new_code_cell("x = 1")])
    lines = nb.cells[0].source.split("\n")
    assert lines[0] == "# Second chapter" and lines[1] == ""
    assert "runnable copy of chapter 2 of *Mini Book*" in lines[2]
    assert f"<{URL}book/02_second.html>" in lines[2] and "GPU runtime" in lines[2]
    assert next(c for c in nb.cells if c.cell_type == "code").source == SETUP
    recorded = nb.metadata["normlab"]  # which executed chapter it was made from
    assert recorded["reader_of"] == "book/02_second.ipynb" and recorded["stamp"] == "abc123"


def test_reader_is_valid_and_reproducible(book):
    source = chapter("{cite}`duo2015` {glue:text}`x:.2f`", outputs=[glue_output("x", "0.5")],
                     cells=[figure_cell("fig-a", "A."), figure_cell("fig-b", "B.")])
    first = nbformat.writes(readers.reader(source, "book/02_second", book))
    assert first == nbformat.writes(readers.reader(source, "book/02_second", book))
    nb = nbformat.reads(first, as_version=4)
    nbformat.validate(nb)
    assert len({c.id for c in nb.cells}) == len(nb.cells)
    assert source.cells[1].outputs  # the chapter itself is not changed


def test_cli_writes_readers_and_check_reports_stale_ones(mini, capsys):
    path = mini / "book" / "02_second.ipynb"
    target = mini / "notebooks" / "book" / "02_second.ipynb"
    fix = f"run: python -m normlab.notebooks readers {path}"
    assert readers.reader_problems(path) == [
        f"its reader notebook notebooks/book/02_second.ipynb is missing; {fix}"]

    assert notebooks.main(["readers", str(path)]) == 0
    assert "wrote notebooks/book/02_second.ipynb" in capsys.readouterr().out
    assert readers.reader_problems(path) == []
    assert nbformat.read(target, as_version=4).metadata["normlab"]["reader_of"] == "book/02_second.ipynb"

    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "# Second chapter, renamed"
    nbformat.write(nb, path)
    assert notebooks.main(["check", str(path)]) == 1
    assert (f"its reader notebook notebooks/book/02_second.ipynb differs from the chapter; {fix}"
            in capsys.readouterr().out)


def test_a_notebook_outside_a_book_has_no_reader(tmp_path):
    path = tmp_path / "alone.ipynb"
    nbformat.write(chapter(), path)
    assert readers.reader_problems(path) == []
    with pytest.raises(ValueError, match="is not in a book"):
        readers.write_reader(path)


def test_a_glued_block_becomes_its_markdown(book):
    table = "| a | b |\n|---|---|\n| 1 | **2** |"
    output = nbformat.v4.new_output("display_data", data={PREFIX + "text/markdown": table},
                                    metadata={"scrapbook": {"name": "t", "mime_prefix": PREFIX}})
    assert convert(book, "Before.\n\n```{glue:md} t\n:format: myst\n```\n\nAfter.",
                   outputs=[output]) == f"Before.\n\n{table}\n\nAfter."
    with pytest.raises(ValueError, match="nothing glued as 'missing'"):
        convert(book, "```{glue:md} missing\n```")


def test_the_reader_says_whose_numbers_the_text_gives(book):
    source = chapter(outputs=[glue_output("ch2_dataset", "'Fashion-MNIST'")])
    source.metadata["normlab"].update(machine="AMD EPYC, 2 cores", executed="2026-12-06")
    note = readers.reader(source, "book/02_second", book).cells[0].source.split("\n\n")[2]
    assert note.startswith("*Whose numbers?* The numbers in the text come from the run the website "
                           "shows (Fashion-MNIST; full profile; AMD EPYC, 2 cores; executed 2026-12-06).")
    assert "then they are yours" in note
    bare = chapter()
    bare.metadata["normlab"] = {}
    note = readers.reader(bare, "book/02_second", book).cells[0].source.split("\n\n")[2]
    assert "the run the website shows. The outputs" in note  # nothing recorded: nothing claimed


def _with_ledger(path, rows, dataset="Fashion-MNIST"):
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [glue_output("ch2_dataset", repr(dataset)),
                           glue_output("ch2_ledger_rows", repr(json.dumps(rows)))]
    nbformat.write(nb, path)


def test_the_evidence_page_collects_the_ledgers_in_the_books_order(mini, capsys):
    from normlab import evidence

    row = dict(claim="BN | helps", source="a paper", measurement="m", result="r", section="sec-a")
    _with_ledger(mini / "book" / "02_second.ipynb",
                 [{**row, "status": "reproduced"}, {**row, "status": "not resolved at 3 seeds"}])
    page = evidence.markdown(mini)
    assert "the run the website shows (Fashion-MNIST)" in page
    assert "| reproduced | 1 |\n| not reproduced | 0 |\n| not resolved | 1 |\n| **all** | **2** |" in page
    assert "| {ref}`BN \\| helps <sec-a>` | a paper | 2 | not resolved at 3 seeds |" in page
    assert page.endswith("Chapter 1 has no ledger yet.\n")
    assert evidence.problems(mini) == [
        "the evidence page book/evidence.md is missing; run: python -m normlab.notebooks evidence"]
    assert notebooks.main(["check", str(mini / "book" / "02_second.ipynb")]) == 1
    assert "the evidence page book/evidence.md is missing" in capsys.readouterr().out
    evidence.write(mini)
    assert evidence.problems(mini) == []
    _with_ledger(mini / "book" / "02_second.ipynb", [{**row, "status": "not reproduced"}])
    assert "differs from the chapters' ledgers" in evidence.problems(mini)[0]


# --- the book's own reader notebooks ---------------------------------------------------------------

BOOK = readers.load_book(ROOT)
CHAPTERS = [page for page in BOOK.pages if (ROOT / f"{page}.ipynb").exists()]
RAW_MYST = [re.compile(r"\{[\w:.+-]+\}`"), re.compile(r"^\s*(```|:::)+\s*\{", re.MULTILINE),
            re.compile(r"^\s*\([^()\s]+\)=\s*$", re.MULTILINE)]


def glue_roles(nb):
    """The ``{glue:text}`` roles of a chapter in the order the website shows them (captions included)."""
    texts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            texts.append(cell.source)
        else:
            texts.append(cell.metadata.get("mystnb", {}).get("figure", {}).get("caption", ""))
    return [m.group(1) for m in re.finditer(r"\{glue:text\}`([^`]+)`", "\n".join(texts))]


def glued_text(values, role):
    key, _, spec = role.rpartition(":") if ":" in role else (role, "", "")
    assert key in values, f"{key} is not glued: the chapter must be executed again"
    return format_plain_text(values[key]["text/plain"], spec)


@pytest.mark.parametrize("page", CHAPTERS)
def test_reader_notebook_is_committed_and_current(page):
    assert readers.reader_problems(ROOT / f"{page}.ipynb") == []


@pytest.mark.parametrize("page", CHAPTERS)
def test_reader_notebook_reads_as_plain_markdown(page):
    chapter_nb = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
    reader = nbformat.read(ROOT / BOOK.readers_dir / f"{page}.ipynb", as_version=4)
    nbformat.validate(reader)
    assert len({c.id for c in reader.cells}) == len(reader.cells)
    markdown = "\n\n".join(c.source for c in reader.cells if c.cell_type == "markdown")
    for pattern in RAW_MYST:
        assert not pattern.findall(markdown), f"raw MyST in the reader of {page}"
    values = readers.glued_values(chapter_nb)
    for role in glue_roles(chapter_nb):
        assert readers.markdown_text(glued_text(values, role)) in markdown, role
    first = next(c for c in chapter_nb.cells if c.cell_type == "code")
    assert 'find_spec("normlab")' in first.source
    assert next(c for c in reader.cells if c.cell_type == "code").source == first.source


# --- against the website ---------------------------------------------------------------------------

def html_numbers(page_html):
    """Label → number text of every figure and equation a page defines, and of every reference
    (a figure shown smaller than its pixels is wrapped in a link to the full image; one with a
    phone drawing in a <picture>)."""
    found = dict(re.findall(r'id="([\w-]+)">\s*(?:<a [^>]*>)?(?:<picture><source[^>]*>)?<img[^>]*>'
                            r'(?:</picture>)?\s*(?:</a>\s*)?<figcaption>\s*<p>'
                            r'<span class="caption-number">([^<]+?) </span>', page_html))
    found |= dict(re.findall(r'id="equation-([\w-]+)">\s*<span class="eqno">(\([^<]+\))', page_html))
    references = re.findall(r'href="[^"#]*#([\w-]+)"><span class="std std-numref">([^<]+)</span>', page_html)
    references += re.findall(r'href="[^"#]*#equation-([\w-]+)">(\([^<]+\))</a>', page_html)
    return found, references


@pytest.mark.parametrize("page", CHAPTERS)
def test_numbers_and_glued_text_match_the_website(website, page):
    page_html = (website.html / f"{page}.html").read_text(encoding="utf-8")
    defined, references = html_numbers(page_html)
    ours = {label: (readers.FIGURE_FORMAT % found.number if found.kind == "figure" else f"({found.number})")
            for label, found in BOOK.labels.items()}
    assert defined == {label: text for label, text in ours.items() if BOOK.labels[label].page == page}
    source = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
    cited = re.findall(r"\{(?:numref|eq)\}`(?:[^`<]*<)?([\w-]+)>?`",
                       "\n".join(c.source for c in source.cells if c.cell_type == "markdown"))
    assert {label for label, _ in references} == set(cited)
    assert all(ours[label] == text for label, text in references)

    pasted = [html.unescape(t) for t in re.findall(r'<span class="pasted-text">(.*?)</span>', page_html)]
    values = readers.glued_values(source)
    assert pasted == [glued_text(values, role) for role in glue_roles(source)]


@pytest.mark.parametrize("page", CHAPTERS)
def test_citations_read_as_on_the_website(website, page):
    page_html = (website.html / f"{page}.html").read_text(encoding="utf-8")
    spans = re.findall(r'<span class="bibtex-citation"[^>]*>(.*?)</span>', page_html, re.DOTALL)
    shown = {html.unescape(re.sub(r"<[^>]+>", "", span)) for span in spans}
    reader = nbformat.read(ROOT / BOOK.readers_dir / f"{page}.ipynb", as_version=4)
    markdown = "\n".join(c.source for c in reader.cells if c.cell_type == "markdown")
    plain = re.sub(r"\s+", " ", re.sub(r"\[([^\[\]]*)\]\([^)]*\)", r"\1", markdown).replace("*", ""))
    for citation in shown:
        assert citation in plain


@pytest.mark.parametrize("page", CHAPTERS)
def test_the_colab_button_opens_the_reader_notebook(website, page):
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    page_html = (website.html / f"{page}.html").read_text(encoding="utf-8")
    repository = config["repository"]["url"].removeprefix("https://github.com/")
    colab = (f"{config['launch_buttons']['colab_url']}/github/{repository}/blob/"
             f"{config['repository']['branch']}/{BOOK.readers_dir}/{page}.ipynb")
    assert f'href="{colab}"' in page_html
    assert (ROOT / BOOK.readers_dir / f"{page}.ipynb").exists()
    assert f'<link rel="canonical" href="{BOOK.url(page)}" />' in page_html  # the address readers link to
    # the other header buttons do not depend on path_to_book
    assert f'href="{config["repository"]["url"]}"' in page_html
    assert f'href="{config["repository"]["url"]}/issues/new?' in page_html
    download = re.search(r'href="\.\./(_sources/[^"]+\.ipynb)"', page_html).group(1)
    assert (website.html / download).exists()


def test_works_that_would_cite_alike_get_letters_in_the_order_of_the_references_page():
    from pybtex.database import parse_string

    entries = parse_string(r"""
        @article{later, author = {LeCun, Y. and Bottou, L. and Orr, G.}, title = {B}, year = {1998}}
        @article{earlier, author = {LeCun, Y. and Bottou, L. and Bengio, Y.}, title = {A}, year = {1998}}
        @misc{uncited, author = {LeCun, Yann and Cortes, C. and Burges, C.}, title = {MNIST}, year = {1998}}
        @article{alone, author = {LeCun, Yann}, title = {Alone}, year = {1998}}
    """, "bibtex").entries
    # Bengio sorts before Orr; a work no page cites takes no letter; one name differs: no letter
    lettered = readers.distinct_years(entries, {"later", "earlier", "alone"})
    assert lettered == {"earlier": "1998a", "later": "1998b"}
    assert readers.distinct_years(entries, {"later", "alone"}) == {}
