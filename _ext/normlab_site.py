"""Site fixes that the theme cannot be configured into: registered in ``_config.yml``.

* MathJax is served from ``_static/mathjax`` (MathJax 3 from the ``sphinx-mathjax-offline``
  package), so equations render for a reader with no network; the default is a CDN.
* sphinx-thebe adds its inline configuration script once per page *and* once per build, so every
  page declared ``THEBE_JS_URL`` twice (a ``SyntaxError`` in the console): scripts are
  de-duplicated.
* A figure is described by its caption for a reader who cannot see it (the default ``alt`` is
  the image's file name, a hash), and every image loads only when scrolled to.
* A phone gets the drawing of each figure made for it: :func:`normlab.plots.show` stores it in
  the output's metadata, and the page serves it in a ``<picture>`` below :data:`PHONE`; where
  that drawing stacks the panels, the caption says so (shown on a phone only).
* An output whose text is aligned in columns (a table, an array) is marked ``columns``, so the
  style sheet keeps its lines whole (scrolling on a phone) while prose outputs wrap.
* The page's ".ipynb" download is the reader notebook (plain Markdown, as Colab opens it), not
  the MyST source with its roles.
"""

import base64
import hashlib
import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
from docutils import nodes
from sphinx.util.fileutil import copy_asset

MATHJAX = "mathjax/startup.js"  # the loader; _ext/lean_assets.py names what it loads
# Screens this narrow get a figure's phone drawing: a desktop figure shown narrower than about 560
# px would shrink its 10 pt labels below 9 CSS px.
PHONE = "(max-width: 600px)"
# An image of a cell output, named by myst-nb after the SHA-256 of its bytes.
OUTPUT_IMAGE = re.compile(r'<img [^>]*src="(?P<folder>[^"]*_images/)(?P<sha>[0-9a-f]{64})\.png"[^>]*>')
ALIGNED = re.compile(r"\S {2,}\S")  # two spaces inside a line only ever align columns
FIGURE = re.compile(r"<figure\b.*?</figure>", re.DOTALL)
STACKED = '<p class="stacked-note">On a phone the panels are stacked in reading order, left before right.</p>'


def _mathjax_folder() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None:
        raise RuntimeError("sphinx-mathjax-offline is missing: pip install -r requirements.txt")
    return Path(spec.origin).parent / "static" / "mathjax"


def copy_mathjax(app, exception):
    if exception is None and app.builder.format == "html":
        copy_asset(str(_mathjax_folder()), str(Path(app.outdir) / "_static" / "mathjax"))


def deduplicate_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def describe_images(app, doctree, docname):
    for image in doctree.findall(nodes.image):
        image["loading"] = "lazy"
        figure = image.parent
        while figure is not None and not isinstance(figure, nodes.figure):
            figure = figure.parent
        caption = figure.next_node(nodes.caption) if figure is not None else None
        if caption is not None:
            image["alt"] = caption.astext()


def mark_aligned_outputs(app, doctree, docname):
    for block in doctree.findall(nodes.literal_block):
        if "output" in block["classes"] and ALIGNED.search(block.astext()):
            block["classes"].append("columns")


def phone_figures(app, pagename, templatename, context, doctree):
    """Wrap each figure that has a phone drawing in a <picture> that serves it below PHONE."""
    source = Path(app.env.doc2path(pagename)) if pagename in app.env.all_docs else None
    if source is None or source.suffix != ".ipynb" or "body" not in context:
        return
    phones = {}
    for cell in nbformat.read(source, as_version=4).cells:
        for output in cell.get("outputs", []):
            phone = output.get("metadata", {}).get("normlab", {}).get("phone")
            if phone:
                desktop = base64.b64decode(output["data"]["image/png"])
                phones[hashlib.sha256(desktop).hexdigest()] = phone

    def picture(match):
        phone = phones.get(match["sha"])
        if phone is None:
            return match[0]
        name = f"{match['sha']}-phone.png"
        images = Path(app.outdir) / "_images"  # Sphinx copies the pages' images there later
        images.mkdir(parents=True, exist_ok=True)
        (images / name).write_bytes(base64.b64decode(phone["image/png"]))
        return (f'<picture><source media="{PHONE}" srcset="{match["folder"]}{name}" '
                f'width="{phone["width"]}" height="{phone["height"]}">{match[0]}</picture>')

    def note_stacking(match):  # "left" and "right" in the caption: above and below on a phone
        image = OUTPUT_IMAGE.search(match[0])
        if image is None or not phones.get(image["sha"], {}).get("stacked"):
            return match[0]
        return match[0].replace("</figcaption>", f"{STACKED}\n</figcaption>", 1)

    context["body"] = OUTPUT_IMAGE.sub(picture, FIGURE.sub(note_stacking, context["body"]))


def reader_downloads(app, exception):
    """Replace each chapter's downloadable source by its reader notebook."""
    if exception is not None or app.builder.format != "html":
        return
    for docname in app.env.found_docs:
        reader = Path(app.srcdir) / "notebooks" / f"{docname}.ipynb"
        download = Path(app.outdir) / "_sources" / f"{docname}.ipynb"
        if reader.is_file() and download.is_file():
            shutil.copyfile(reader, download)


def setup(app):
    _mathjax_folder()  # fail at the start of a build, not at its end
    app.config.mathjax_path = MATHJAX
    app.connect("html-page-context", deduplicate_scripts, priority=900)
    app.connect("html-page-context", phone_figures)
    app.connect("doctree-resolved", describe_images)
    app.connect("doctree-resolved", mark_aligned_outputs)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", reader_downloads)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

