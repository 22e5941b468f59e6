"""Reader notebooks: the chapters as Colab and JupyterLab show them, in plain Markdown.

The website renders the chapters' MyST: glued values, citations, numbered figures and equations,
links between pages. Colab and JupyterLab show Markdown as it is written, so there every role,
directive or label would appear as raw syntax. :func:`reader` makes a chapter's *reader notebook*,
the copy they open, whose Markdown says in plain Markdown what the website shows, with the same
outputs. ``python -m normlab.notebooks execute`` writes it next to executing a chapter,
``readers`` rewrites it, and ``check`` reports one that is missing or out of date. The numbering,
citation style and page addresses follow the website's; a test compares them with a build.
"""

from __future__ import annotations

import copy
import posixpath
import re
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from myst_nb.core.variables import format_plain_text

ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
               "attention": "Attention", "caution": "Caution", "warning": "Warning", "danger": "Danger",
               "error": "Error", "seealso": "See also"}
FIGURE_FORMAT = "Fig. %s"  # Sphinx's default numfig_format for figures, which the book keeps
CITATION_BRACKETS = "[]"  # sphinxcontrib-bibtex's default for author-year citations, which the book keeps
READER_LINE = ("This notebook is the runnable copy of {chapter}*{title}*; read it with its figures and "
               "references on the website, <{url}>. On Colab, choose a GPU runtime (Runtime → Change "
               "runtime type) before running it.")

_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|:{3,})\s*(?:\{(?P<name>[^}\s]+)\})?\s*(?P<argument>.*)$")
_TARGET = re.compile(r"^[ \t]*\([^()\s]+\)=[ \t]*(?:\n|$)", re.MULTILINE)
_COMMENT = re.compile(r"^%.*(?:\n|$)", re.MULTILINE)
_EQUATION = re.compile(r"^(?P<open>[ \t]*\$\$)(?P<body>(?:(?!\$\$)[\s\S])+?)\$\$"
                       r"[ \t]*\((?P<label>[^()\s]+)\)", re.MULTILINE)
# One pass over code spans, roles and links, so that nothing inside a code span is converted.
_INLINE = re.compile(r"\{(?P<role>[\w:.+-]+)\}`(?P<content>[^`]+)`"
                     r"|(?P<code>(?P<ticks>`+)[^\n]+?(?P=ticks))"
                     r"|(?P<image>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
_EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
_ESCAPE = re.compile(r"([\\`*_\[\]<>$])")


@dataclass(frozen=True)
class Citation:
    """An entry of the bibliography as an author-year citation names it on the website."""

    authors: str  # "Ioffe and Szegedy", "Santurkar *et al.*", or the title in italics
    year: str  # "n.d." when the entry has none, as sphinxcontrib-bibtex writes it


@dataclass(frozen=True)
class Label:
    """A figure or an equation a chapter can point to, numbered as on the website."""

    kind: str  # "figure" or "equation"
    number: str  # "5.2"
    page: str  # the page that defines it, e.g. "book/05_lenet5_experiments"


@dataclass(frozen=True)
class Book:
    """What a reader notebook needs to know about the whole book, read from its configuration.

    ``pages`` maps each page of ``_toc.yml`` (e.g. ``book/05_lenet5_experiments``) to its title,
    ``chapters`` the numbered ones to their number.
    """

    title: str
    baseurl: str
    repository: str
    branch: str
    readers_dir: str
    references_page: str | None
    pages: dict[str, str]
    chapters: dict[str, int]
    labels: dict[str, Label]
    citations: dict[str, Citation]

    def url(self, page: str, anchor: str = "") -> str:
        """A page's address on the website (Sphinx writes ``book/05_x`` as ``book/05_x.html``)."""
        return self.baseurl.rstrip("/") + "/" + page + ".html" + (f"#{anchor}" if anchor else "")


def book_root(path: Path | str) -> Path | None:
    """The folder of the book a notebook belongs to (it holds ``_config.yml`` and ``_toc.yml``)."""
    for folder in Path(path).resolve().parents:
        if (folder / "_config.yml").exists() and (folder / "_toc.yml").exists():
            return folder
    return None


def load_book(root: Path | str) -> Book:
    """Read the website's address, the numbering and the bibliography from the book at ``root``."""
    import yaml

    root = Path(root)
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    if not config.get("html", {}).get("baseurl"):
        raise ValueError("_config.yml has no html.baseurl: the reader notebooks link to the website there")
    pages, chapters = _toc_pages(toc)
    sources = {page: _page_source(root, page) for page in pages}
    repository = config["repository"]
    return Book(title=config["title"], baseurl=config["html"]["baseurl"],
                repository=repository["url"].rstrip("/"), branch=repository.get("branch", "main"),
                readers_dir=repository.get("path_to_book", ""),
                references_page=next((p for p, s in sources.items() if _is_bibliography(s)), None),
                pages={page: _title(source) for page, source in sources.items()},
                chapters=chapters, labels=_labels(sources, chapters),
                citations=_citations([root / f for f in config.get("bibtex_bibfiles", [])],
                                     cited=_cited_keys(sources.values())))


def chapter_numbers(root: Path | str) -> dict[str, int]:
    """The numbered chapters of the book at ``root`` (page: number), read from ``_toc.yml`` alone."""
    import yaml

    return _toc_pages(yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8")))[1]


def _toc_pages(toc) -> tuple[list[str], dict[str, int]]:
    """The pages in reading order, and the chapter numbers: Jupyter Book numbers the chapters of
    ``numbered`` parts and goes on counting from one such part to the next."""
    parts = toc.get("parts") or [{"chapters": toc.get("chapters", []),
                                  "numbered": toc.get("options", {}).get("numbered", False)}]
    pages, chapters = [re.sub(r"\.(ipynb|md)$", "", toc["root"])], {}
    for part in parts:
        for entry in part.get("chapters", []):
            if "file" not in entry or "sections" in entry:
                raise ValueError(f"_toc.yml entry {entry} is not a plain chapter file; the reader "
                                 "notebooks number chapters only")
            page = re.sub(r"\.(ipynb|md)$", "", entry["file"])
            pages.append(page)
            if part.get("numbered"):
                chapters[page] = len(chapters) + 1
    return pages, chapters


def _page_source(root: Path, page: str):
    """A page's notebook (its Markdown cells matter) or, for a Markdown page, its text."""
    import nbformat

    if (root / f"{page}.ipynb").exists():
        return nbformat.read(root / f"{page}.ipynb", as_version=4)
    return (root / f"{page}.md").read_text(encoding="utf-8")


def _markdown_of(source) -> str:
    if isinstance(source, str):
        return source
    return "\n\n".join(c.source for c in source.cells if c.cell_type == "markdown")


def _title(source) -> str:
    """The page title as the website shows it in links: the text of its H1."""
    found = re.search(r"^# (.+)$", _markdown_of(source), re.MULTILINE)
    if not found:
        raise ValueError(f"a page has no H1 title: {_markdown_of(source)[:60]!r}")
    return found.group(1).strip()


def _is_bibliography(source) -> bool:
    return bool(re.search(r"^(```+|:::+)\s*\{bibliography\}", _markdown_of(source), re.MULTILINE))


def _labels(sources: dict, chapters: dict[str, int]) -> dict[str, Label]:
    """Number the figures (code cells with ``mystnb.figure.name``) and the labelled equations of
    every notebook page as Sphinx does with ``numfig_secnum_depth: 1``: chapter, then position."""
    labels = {}
    for page, source in sources.items():
        if isinstance(source, str):
            continue
        prefix = f"{chapters[page]}." if page in chapters else ""
        counts = {"figure": 0, "equation": 0}
        for cell in source.cells:
            if cell.cell_type == "code":
                name = cell.metadata.get("mystnb", {}).get("figure", {}).get("name")
                found = [("figure", name)] if name else []
            else:
                found = [("equation", m["label"]) for m in _EQUATION.finditer(cell.source)]
            for kind, label in found:
                counts[kind] += 1
                labels[label] = Label(kind, f"{prefix}{counts[kind]}", page)
    return labels


def _cited_keys(sources) -> set[str]:
    """Every bibliography key that some page of the book cites."""
    return {key.strip() for source in sources for match in _INLINE.finditer(_markdown_of(source))
            if (match["role"] or "").startswith("cite") for key in match["content"].split(",")}


def _plain(latex: str) -> str:
    from pybtex.richtext import Text

    return Text.from_latex(latex).render_as("text")


def _cited_names(entry) -> str:
    """What a citation shows before the year, as sphinxcontrib-bibtex's ``author_year`` style
    writes it: one or two last names, else the first one and *et al.*; without authors the title
    in italics."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(_plain(n) for n in p.prelast_names + p.last_names) for p in people]
    if len(names) > 2:
        return f"{names[0]} *et al.*"
    return " and ".join(names) if names else f"*{_plain(entry.fields['title'])}*"


def _fold(latex: str) -> str:
    """Plain, accent-free, case-folded text of a BibTeX value, for sorting."""
    decomposed = unicodedata.normalize("NFKD", _plain(latex))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def bibliography_order(entry) -> tuple:
    """Where an entry stands on the references page: by the family names (then given names) of
    all its authors, then year, then title. The website's bibliography style sorts with it."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [(" ".join(_fold(n) for n in p.prelast_names + p.last_names),
              " ".join(_fold(n) for n in p.first_names + p.middle_names)) for p in people]
    title = _fold(entry.fields.get("title", ""))
    # "~" sorts an undated work after the dated works of the same authors
    return (names or [(title, "")], entry.fields.get("year", "~"), title)


def distinct_years(entries: dict, cited: set[str]) -> dict[str, str]:
    """The year each cited entry shows, with a, b, c... added where two cited works would
    otherwise read the same (three works of *LeCun et al., 1998*), lettered in the order of the
    references page. The website's bibliography style applies the same years."""
    same = {}
    for key in sorted(cited & set(entries)):
        entry = entries[key]
        if "year" in entry.fields:
            same.setdefault((_cited_names(entry), entry.fields["year"]), []).append(key)
    years = {}
    for (_, year), keys in same.items():
        if len(keys) > 1:
            ordered = sorted(keys, key=lambda k: bibliography_order(entries[k]))
            letters = zip(ordered, string.ascii_lowercase, strict=False)
            years.update((key, year + letter) for key, letter in letters)
    return years


def _citations(bibfiles, cited: set[str]) -> dict[str, Citation]:
    """How the website cites every bibliography entry (names, then the year; n.d. without one)."""
    from pybtex.database import parse_file

    citations = {}
    for bibfile in bibfiles:
        entries = parse_file(bibfile).entries
        years = distinct_years(entries, cited)
        for key, entry in entries.items():
            citations[key] = Citation(_cited_names(entry), years.get(key, entry.fields.get("year", "n.d.")))
    return citations


def glued_values(nb) -> dict[str, dict]:
    """Each name glued by a notebook with the mime bundle of its value (without myst-nb's prefix)."""
    values = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook")
            if record:
                prefix = len(record.get("mime_prefix", ""))
                values[record["name"]] = {key[prefix:]: value for key, value in output["data"].items()}
    return values


def glued_dataset(glued: dict[str, dict]) -> str | None:
    """The dataset a chapter's run used, as its code glued it (``ch5_dataset``), if it did."""
    for name, value in glued.items():
        if name.endswith("_dataset") and "text/plain" in value:
            return value["text/plain"].strip("'\"")
    return None


def markdown_text(text: str) -> str:
    """``text`` escaped so that Markdown shows it as it is (a glued ``batch_fused`` stays roman)."""
    return _ESCAPE.sub(r"\\\1", text)


@dataclass(frozen=True)
class _Page:
    """The page being converted: its name, the book and the values its code glued."""

    name: str
    book: Book
    glued: dict[str, dict]

    def glued_text(self, key: str) -> str:
        if key not in self.glued or "text/plain" not in self.glued[key]:
            raise ValueError(f"{self.name}: nothing glued as {key!r} with a text/plain value")
        return self.glued[key]["text/plain"]

    def label(self, label: str, kind: str) -> Label:
        found = self.book.labels.get(label)
        if found is None or found.kind != kind:
            raise ValueError(f"{self.name}: no {kind} labelled {label!r} in the book")
        return found

    def link(self, text: str, page: str, anchor: str = "") -> str:
        """Text for a number: plain on its own page, a link to the website on another one."""
        return text if page == self.name else f"[{text}]({self.book.url(page, anchor)})"

    def page(self, target: str) -> str:
        """The page a relative path names, as the website resolves it (``/`` is the book's root)."""
        target = re.sub(r"\.(ipynb|md)$", "", target)
        if target.startswith("/"):
            return posixpath.normpath(target.lstrip("/"))
        return posixpath.normpath(posixpath.join(posixpath.dirname(self.name), target))


def _glue_text(content: str, page: _Page) -> str:
    key, _, spec = content.rpartition(":") if ":" in content else (content, "", "s")
    text = page.glued_text(key)
    try:
        return markdown_text(format_plain_text(text, spec))  # myst-nb's own {glue:text} formatting
    except (TypeError, ValueError) as error:
        raise ValueError(f"{page.name}: cannot format the glued {key!r} with {spec!r}: {error}") from error


def _glue_md(content: str, page: _Page) -> str:
    """A value glued as Markdown (a verdict with its bold part) goes in as Markdown."""
    if "text/markdown" not in page.glued.get(content, {}):
        raise ValueError(f"{page.name}: nothing glued as {content!r} with a text/markdown value")
    return page.glued[content]["text/markdown"].strip()


def _citation_list(content: str, page: _Page) -> list[tuple[Citation, str]]:
    if page.book.references_page is None:
        raise ValueError(f"{page.name}: cites {content!r}, but no page of the book shows the bibliography")
    keys = [key.strip() for key in content.split(",")]
    for key in keys:
        if key not in page.book.citations:
            raise ValueError(f"{page.name}: cannot cite {key!r}: it is not in the bibliography")
    return [(page.book.citations[key], page.book.url(page.book.references_page)) for key in keys]


def _cite(content: str, page: _Page) -> str:
    """``[Ioffe and Szegedy, 2015]``, linked to the references page, as the website writes it."""
    left, right = CITATION_BRACKETS
    items = [f"[{c.authors}, {c.year}]({url})" for c, url in _citation_list(content, page)]
    return left + ", ".join(items) + right


def _cite_textual(content: str, page: _Page) -> str:
    """``Ioffe and Szegedy [2015]``, as the website writes ``{cite:t}``."""
    left, right = CITATION_BRACKETS
    items = [f"{c.authors} {left}[{c.year}]({url}){right}" for c, url in _citation_list(content, page)]
    return ", ".join(items)


def _numref(content: str, page: _Page) -> str:
    explicit = _EXPLICIT.match(content)
    text, label = (explicit["text"], explicit["target"]) if explicit else (FIGURE_FORMAT, content)
    found = page.label(label, "figure")
    text = text.replace("%s", found.number).replace("{number}", found.number)
    return page.link(text, found.page, label)


def _eq(content: str, page: _Page) -> str:
    found = page.label(content, "equation")
    return page.link(f"({found.number})", found.page, f"equation-{content}")


def _doc(content: str, page: _Page) -> str:
    explicit = _EXPLICIT.match(content)
    target = page.page(explicit["target"] if explicit else content)
    if target not in page.book.pages:
        raise ValueError(f"{page.name}: {{doc}} names {content!r}, which is not a page of _toc.yml")
    text = explicit["text"] if explicit else page.book.pages[target]
    return f"[{text}]({page.book.url(target)})"


ROLES = {"glue:text": _glue_text, "glue:md": _glue_md, "cite": _cite, "cite:t": _cite_textual,
         "numref": _numref, "eq": _eq, "doc": _doc}


def _link(match: re.Match, page: _Page) -> str:
    """A relative link to a page goes to the website, to another file to the repository."""
    target = match["target"]
    if re.match(r"^([a-z][\w+.-]*:|#)", target):
        return match[0]
    path, _, anchor = target.partition("#")
    if re.search(r"\.(ipynb|md)$", path):
        url = page.book.url(page.page(path), anchor)
    else:
        kind = "raw" if match["image"] else "blob"
        url = f"{page.book.repository}/{kind}/{page.book.branch}/{page.page(path)}"
    return f"{match['image']}[{match['text']}]({url})"


def _inline(match: re.Match, page: _Page) -> str:
    if match["code"]:
        return match[0]
    if match["target"]:
        return _link(match, page)
    if match["role"] not in ROLES:
        raise ValueError(f"{page.name}: the role {{{match['role']}}} has no plain-Markdown form in the "
                         "reader notebooks; add one to normlab.readers.ROLES")
    return ROLES[match["role"]](match["content"], page)


def _tagged(match: re.Match, page: _Page) -> str:
    """A labelled display equation, numbered with ``\\tag``, which MathJax and KaTeX render."""
    tag = "\\tag{" + page.label(match["label"], "equation").number + "}"
    body = match["body"]
    if "\n" in body:
        return match["open"] + "\n" + body.strip("\n") + "\n" + tag + "\n$$"
    return f"{match['open']}{body.rstrip()} {tag} $$"


def _prose(text: str, page: _Page) -> str:
    text = _COMMENT.sub("", _TARGET.sub("", text))
    text = _EQUATION.sub(lambda m: _tagged(m, page), text)
    return _INLINE.sub(lambda m: _inline(m, page), text)


def _directive(name: str, argument: str, body: list[str], page: _Page) -> str:
    """A directive as plain Markdown: an admonition becomes a blockquote, a glued block (a table
    glued as Markdown, such as a chapter's ledger) the block itself."""
    while body and re.match(r"^:[\w-]+:", body[0]):  # options such as :class: change only the style
        body = body[1:]
    if name == "glue:md":
        return _glue_md(argument.strip(), page)
    if name not in ADMONITIONS and name != "admonition":
        raise ValueError(f"{page.name}: the directive {{{name}}} has no plain-Markdown form in the "
                         "reader notebooks; add one to normlab.readers._directive")
    if name == "admonition":
        title, content = argument, body
    else:
        title, content = ADMONITIONS[name], [argument, *body] if argument else body
    title = _prose(title, page)
    title += "" if title.endswith((".", "?", "!", ":")) else "."
    text = f"**{title}** " + _markdown(page, "\n".join(content).strip("\n"))
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def _markdown(page: _Page, text: str) -> str:
    """A Markdown cell of a chapter as plain Markdown (see :func:`reader`)."""
    lines, blocks, prose = text.split("\n"), [], []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            prose.append(lines[index])
            index += 1
            continue
        end = next((i for i in range(index + 1, len(lines)) if _closes(lines[i], opening["fence"])),
                   len(lines))
        if prose:
            blocks.append(_prose("\n".join(prose), page))
            prose = []
        if opening["name"]:
            blocks.append(_directive(opening["name"], opening["argument"], lines[index + 1:end], page))
        else:  # a code block: shown as written
            blocks.append("\n".join(lines[index:end + 1]))
        index = end + 1
    if prose:
        blocks.append(_prose("\n".join(prose), page))
    return "\n".join(blocks)


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence`` (the same character, at least as many)."""
    return re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*", line) is not None


def _without_code_blocks(text: str) -> str:
    """The text less its fenced code blocks, whose content is shown as written."""
    kept, fence = [], None
    for line in text.split("\n"):
        opening = _FENCE.match(line)
        if fence is None and opening and not opening["name"]:
            fence = opening["fence"]
        elif fence is not None and _closes(line, fence):
            fence = None
        elif fence is None:
            kept.append(line)
    return "\n".join(kept)


def _myst_left(text: str) -> list[str]:
    """MyST that plain Markdown would show raw: roles outside code, directive fences, labels."""
    text = _without_code_blocks(text)
    roles = [m[0] for m in _INLINE.finditer(text) if m["role"]]
    fences = [m[0] for m in re.finditer(r"^ {0,3}(```+|:::+)\s*\{[^}]*\}.*$", text, re.MULTILINE)]
    return roles + fences + [m[0].strip() for m in _TARGET.finditer(text)]


def reader(nb, page: str, book: Book):
    """The reader notebook of an executed chapter: what Colab and JupyterLab open.

    Its Markdown says what the website shows, in plain Markdown: glued values as text, citations,
    figure and equation numbers, links to the website, directives as blockquotes. Each figure is
    followed by its numbered caption. The hidden outputs that carried the glued values are dropped
    (the values are in the prose now); every other output is kept, so a reader sees the results
    before running anything (a figure without the phone drawing that only the website serves).
    ``page`` is the chapter's name in ``_toc.yml``, e.g.
    ``book/05_lenet5_experiments``. An unknown role or directive raises ``ValueError``: a reader
    notebook never shows raw MyST.
    """
    nb = copy.deepcopy(nb)
    context = _Page(page, book, glued_values(nb))
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "markdown":
            cell.source = _markdown(context, cell.source)
        elif cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not _hidden_glue(o)]
            for output in cell.outputs:  # a figure's phone drawing is for the website only
                output.get("metadata", {}).pop("normlab", None)
            figure = cell.metadata.pop("mystnb", {}).get("figure")
            if figure:
                cells.append(_caption(cell, figure, context))
    nb.cells = cells
    _add_reader_line(nb, context)
    for cell in nb.cells:
        left = _myst_left(cell.source) if cell.cell_type == "markdown" else []
        if left:
            raise ValueError(f"{page}: MyST left in the reader notebook: {', '.join(left)}")
    # which executed chapter (stamp, profile) this copy was made from
    nb.metadata.setdefault("normlab", {})["reader_of"] = f"{page}.ipynb"
    nb.metadata["accelerator"] = "GPU"  # Colab offers a GPU runtime for a notebook that asks for one
    return nb


def _hidden_glue(output) -> bool:
    """An output that only carries a glued value (``glue(..., display=False)``); the website hides it."""
    record = output.get("metadata", {}).get("scrapbook")
    return bool(record and record.get("mime_prefix"))


def _caption(cell, figure, page: _Page):
    """The Markdown cell under a figure: "**Fig. 5.2.** caption", as the website numbers it."""
    import nbformat

    name = figure.get("name")
    number = f"**{FIGURE_FORMAT % page.label(name, 'figure').number}.** " if name else ""
    return nbformat.v4.new_markdown_cell(number + _markdown(page, figure.get("caption", "")),
                                         id=f"{cell.id[:56]}-caption")


def _whose_numbers(nb, page: _Page) -> str:
    """The note that the text's numbers are the website's run (which data, machine, profile and
    date), while the outputs become the reader's own once a cell runs."""
    run = nb.metadata.get("normlab", {})
    facts = [glued_dataset(page.glued) or "",
             f"{run['profile']} profile" if run.get("profile") else "",
             run.get("machine", ""),
             f"executed {run['executed']}" if run.get("executed") else ""]
    facts = "; ".join(fact for fact in facts if fact)
    return (f"*Whose numbers?* The numbers in the text come from the run the website shows"
            f"{' (' + facts + ')' if facts else ''}. The outputs under the code cells are that run's "
            "until you run them; then they are yours, and where your data or device differ (CIFAR-10 "
            "or a GPU on Colab) the outputs, not the text, describe your run.")


def _add_reader_line(nb, page: _Page) -> None:
    """Say under the H1 title where the chapter is to be read, how to run it on Colab, and whose
    numbers the text gives."""
    chapter = page.book.chapters.get(page.name)
    line = READER_LINE.format(chapter=f"chapter {chapter} of " if chapter else "a page of ",
                              title=page.book.title, url=page.book.url(page.name))
    line += "\n\n" + _whose_numbers(nb, page)
    for cell in nb.cells:
        title = re.search(r"^# .+$", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
        if title:
            rest = cell.source[title.end():].lstrip("\n")
            cell.source = cell.source[:title.end()] + "\n\n" + line + ("\n\n" + rest if rest else "")
            return
    raise ValueError(f"{page.name}: no H1 title")


def reader_path(path: Path | str, root: Path, book: Book) -> Path:
    """Where a chapter's reader notebook lives: ``book/05_x.ipynb`` → ``notebooks/book/05_x.ipynb``.

    The folder is ``repository.path_to_book`` of ``_config.yml``, so that the website's Colab
    button, which opens ``<path_to_book>/<page>.ipynb``, opens the reader notebook.
    """
    if not book.readers_dir.strip("/."):
        raise ValueError("set repository.path_to_book in _config.yml to the reader notebooks' folder")
    return root / book.readers_dir / Path(path).resolve().relative_to(root)


def reader_text(path: Path | str, root: Path, book: Book) -> str:
    """The text of a chapter's reader notebook as :func:`write_reader` writes it."""
    import nbformat

    page = Path(path).resolve().relative_to(root).with_suffix("").as_posix()
    return nbformat.writes(reader(nbformat.read(path, as_version=4), page, book)) + "\n"


def write_reader(path: Path | str) -> Path:
    """Write the reader notebook of a chapter of a book; returns where it went."""
    root = book_root(path)
    if root is None:
        raise ValueError(f"{path} is not in a book (no _config.yml and _toc.yml above it)")
    book = load_book(root)
    target = reader_path(path, root, book)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(reader_text(path, root, book), encoding="utf-8")
    return target


def reader_problems(path: Path | str) -> list[str]:
    """Why a chapter's committed reader notebook is not what :func:`reader` makes now, if it is not.

    A notebook outside a book has no reader notebook.
    """
    root = book_root(path)
    if root is None:
        return []
    book = load_book(root)
    target = reader_path(path, root, book)
    fix = f"run: python -m normlab.notebooks readers {path}"
    try:
        text = reader_text(path, root, book)
    except ValueError as error:
        return [f"its reader notebook cannot be made: {error}"]
    if not target.exists():
        return [f"its reader notebook {target.relative_to(root)} is missing; {fix}"]
    if target.read_text(encoding="utf-8") != text:
        return [f"its reader notebook {target.relative_to(root)} differs from the chapter; {fix}"]
    return []
