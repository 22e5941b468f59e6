"""Checks of the book as a whole: the chapters in the TOC, their stored outputs, the site build."""

import base64
import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from normlab import evidence, notebooks, page, plots

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_files(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("root", "file"):
                yield value
            else:
                yield from toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from toc_files(item)


TOC = [ROOT / f for f in toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))]
CHAPTERS = [p.with_suffix(".ipynb") for p in TOC if p.with_suffix(".ipynb").exists()]
IDS = [p.name for p in CHAPTERS]


def read(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def output_text(nb):
    parts = []
    for cell in code_cells(nb):
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts += [v if isinstance(v, str) else json.dumps(v)
                      for k, v in out.get("data", {}).items() if not k.startswith("image/")]
            parts += [out.get("evalue", "")]
    return "\n".join(parts)


def test_every_chapter_is_in_the_toc():
    on_disk = sorted((ROOT / "book").glob("*.ipynb"))
    assert len(CHAPTERS) >= 2
    assert sorted(CHAPTERS) == on_disk
    for entry in TOC:
        assert entry.with_suffix(".ipynb").exists() or entry.with_suffix(".md").exists(), entry


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_stored_outputs_can_be_published(path):
    """Made by the current code under the full profile, with no unexpected error."""
    found = notebooks.problems(read(path))
    assert found == [], f"{found}; run: make execute NOTEBOOKS={path.relative_to(ROOT)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_every_code_cell_ran_once_top_to_bottom(path):
    cells = code_cells(read(path))
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_run_all_never_stops_on_purpose(path):
    """Colab and JupyterLab ignore cell tags: a deliberate error goes through expect_error."""
    for cell in code_cells(read(path)):
        assert "raises-exception" not in cell.metadata.get("tags", []), cell.source
        assert not any(o.output_type == "error" for o in cell.outputs), cell.source


def test_the_chapters_kernels_see_cifar_shaped_images(tmp_path):
    """nbval runs the chapters in kernels that get CIFAR-10 in its own layout (conftest.py), as on
    Colab: 32x32x3 images with labels of shape (N, 1), which no chapter may assume away."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from normlab import data\nprint(data.load('default').describe())")])
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert "dataset: CIFAR-10, 10 classes, 32x32x3 images: 1,200 train, 400 test" in output_text(nb)


HYGIENE = {
    "absolute path": r"(?<![\w.~])/(?:home|root|tmp|work|Users|usr|var|opt|private)/|[A-Z]:\\\\",
    "timestamp": r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}|\b\d{2}:\d{2}:\d{2}\b",
    "PID": r"\bpid\b|process id",
    "memory address": r"\bat 0x[0-9a-fA-F]{6,}",
    "TensorFlow start-up noise": r"absl::InitializeLog|cpu_feature_guard|oneDNN custom operations|"
                                 r"cuda_|cudart_stub|^[IWE]\d{4} \d\d:",
    "progress bar": r"\d+/\d+ (?:\[=*>?\.*\]|━+)",
    "stray repr of a result (end the cell with a statement)":
        r"^(?:Comparison|Difference|Estimate|Record|RunConfig)\(",
}


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_stored_outputs_are_clean(path):
    text = output_text(read(path))
    for what, pattern in HYGIENE.items():
        match = re.search(pattern, text, flags=re.MULTILINE | re.IGNORECASE)
        assert match is None, f"{what} in stored outputs: {match and match.group(0)!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_chapter_has_the_conventional_shape(path):
    nb = read(path)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert len(re.findall(r"^# ", markdown, flags=re.MULTILINE)) == 1
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for section in ("## Summary", "## Exercises", "## References"):
        assert section in markdown
    assert "{cite" in markdown and "{glue:" in markdown


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_a_ledger_shows_its_table_and_links_to_sections_of_its_chapter(path):
    nb = read(path)
    rows = evidence.ledger_rows(nb)
    if rows is None:
        pytest.skip(f"{path.name} has no claims ledger yet")
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## What this chapter showed" in markdown
    assert re.search(r"^```\{glue:md\} ch\d_ledger$", markdown, flags=re.MULTILINE)
    assert markdown.index("## What this chapter showed") > markdown.index("## Exercises")
    labels = set(re.findall(r"^\(([^()\s]+)\)=$", markdown, flags=re.MULTILINE))
    assert {row["section"] for row in rows} <= labels


def test_the_evidence_page_is_what_the_ledgers_say():
    assert evidence.problems(ROOT) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_setup_cell_installs_normlab_on_colab_from_the_configured_repository(path):
    setup, *_ = code_cells(read(path))
    url = CONFIG["repository"]["url"]
    assert f'"normlab @ git+{url}"' in setup.source
    assert 'find_spec("normlab") is None' in setup.source and "google.colab" in setup.source
    assert "tensorflow" not in setup.source.split("pip install", 1)[1].lower()
    assert "runtime.setup(" in code_cells(read(path))[1].source


def test_colab_setup_cell_does_nothing_when_normlab_is_installed():
    setup = code_cells(read(CHAPTERS[0]))[0].source
    python = setup.replace("!pip", "raise SystemExit  # pip")  # IPython's ! syntax, not reached
    result = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == result.stderr == ""


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_every_figure_was_shown_with_a_phone_drawing(path):
    """plots.show checked each figure and drew it again for phones; plt.show() would do neither."""
    figures = [out for cell in code_cells(read(path)) for out in cell.outputs
               if "image/png" in out.get("data", {})]
    for out in figures:
        phone = out.metadata.get("normlab", {}).get("phone", {})
        assert phone.get("width") == round(plots.PHONE_WIDTH * plots.STYLE["figure.dpi"]), out.metadata


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_outputs_aligned_in_columns_fit_the_code_column(path):
    """The website keeps the lines of an output aligned in columns whole (two spaces inside a
    line only ever align), so they must fit the 99 characters the column shows; prose wraps."""
    too_long = []
    for number, cell in enumerate(code_cells(read(path)), start=1):
        for out in cell.outputs:
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            lines = re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()  # without ANSI colours
            if any(re.search(r"\S {2,}\S", line) for line in lines):
                too_long += [f"code cell {number}: {line[:60]}... ({len(line)})"
                             for line in lines if len(line) > page.OUTPUT_WIDTH]
    assert not too_long, "\n".join(too_long)


@pytest.mark.parametrize("path", [*TOC, *CHAPTERS], ids=[p.name for p in [*TOC, *CHAPTERS]])
def test_no_word_is_broken_at_a_line_end(path):
    """Markdown joins lines with a space: "batch-" at a line's end reads "batch- normalized"."""
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in read(path).cells if c.cell_type == "markdown")
    elif path.with_suffix(".md").exists():
        text = path.with_suffix(".md").read_text()
    else:
        return
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    assert not re.findall(r"\w+-\n\s*\w+", text)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_figures_fit_the_column_at_twice_their_resolution(path):
    """The website shows a figure at its stored width, at most the text column (plots.COLUMN_WIDTH),
    from a PNG with twice as many pixels, so that it stays sharp on a phone and when zoomed."""
    figures = [out for cell in code_cells(read(path)) for out in cell.outputs
               if "image/png" in out.get("data", {})]
    for out in figures:
        width = out.metadata["image/png"]["width"]
        pixels = struct.unpack(">I", base64.b64decode(out.data["image/png"])[16:20])[0]
        assert width <= (plots.COLUMN_WIDTH + 0.2) * plots.STYLE["figure.dpi"]
        assert abs(pixels - 2 * width) <= 1, (pixels, width)


def test_book_builds_without_a_warning(website):
    assert website.returncode == 0, website.log[-3000:]
    assert "build succeeded." in website.log
    assert "warning" not in website.log.split("build succeeded")[1][:40]
    for chapter in CHAPTERS:
        page = (website.html / chapter.relative_to(ROOT)).with_suffix(".html").read_text()
        assert "colab.research.google.com/github/" in page  # the launch button


def test_workflows_pass_actionlint():
    actionlint = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) >= 3
    result = subprocess.run([actionlint, *map(str, workflows)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_quick_start_is_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```\w*\n(.*?)```", section, flags=re.DOTALL).group(1)
    assert block.strip().splitlines() == ["make book", "make test"]


def test_chapter_code_is_formatted_to_fit_the_page():
    ruff = str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "format", "--check", "--isolated", "--line-length", "99", "book"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + "run: ruff format --isolated --line-length 99 book"


def test_python_code_passes_ruff():
    ruff = str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "src", "tests", "benchmarks", "conftest.py"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout
