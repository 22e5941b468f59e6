"""Site fixes that the theme cannot be configured into: registered in ``_config.yml``.

* MathJax is served from ``_static/mathjax`` (MathJax 3 from the ``sphinx-mathjax-offline``
  package), so equations render for a reader with no network; the default is a CDN.
* sphinx-thebe adds its inline configuration script once per page *and* once per build, so every
  page declared ``THEBE_JS_URL`` twice (a ``SyntaxError`` in the console): scripts are
  de-duplicated.
"""

import importlib.util
from pathlib import Path

from sphinx.util.fileutil import copy_asset

MATHJAX = "mathjax/tex-chtml.js"


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


def setup(app):
    _mathjax_folder()  # fail at the start of a build, not at its end
    app.config.mathjax_path = MATHJAX
    app.connect("html-page-context", deduplicate_scripts, priority=900)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

