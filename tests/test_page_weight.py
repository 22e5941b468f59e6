"""The built website serves only the icons and the MathJax its pages use (``_ext/lean_assets.py``).

The theme's Font Awesome bundle (1.5 MB, every icon) is replaced at build time by a script that
holds only the icons the pages name, and MathJax is loaded as the components typesetting needs
instead of the combined ``tex-chtml.js``. These checks read the built site: they fail if a page
names an icon the script lacks, if the full bundle is served, or if the pages load what was cut.
How much a page weighs is measured by ``benchmarks/page_weight.py``, not asserted.
"""

import importlib.util
import json
import re
from pathlib import Path

import pydata_sphinx_theme
import pytest

ROOT = Path(__file__).resolve().parents[1]
THEME_BUNDLE = (Path(pydata_sphinx_theme.__file__).parent / "theme" / "pydata_sphinx_theme" / "static"
                / "scripts" / "fontawesome.js")
SUBSET_ENTRY = re.compile(r'^\s*"(fa[srb]) ([a-z0-9-]+)": \[\d+, \d+, "[^"]+"\]', re.MULTILINE)
MATHJAX_CONFIG = re.compile(r"<script>window\.MathJax = (\{.*?\})</script>")


def lean_assets():
    spec = importlib.util.spec_from_file_location("lean_assets", ROOT / "_ext" / "lean_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# How a page or a script names an icon: read as the extension reads it.
STYLES, CLASS, SCRIPT_ICON = (getattr(lean_assets(), name) for name in ("STYLES", "CLASS", "SCRIPT_ICON"))


@pytest.fixture(scope="module")
def html(website):
    """Every built page's HTML by its path in the site."""
    assert website.returncode == 0, website.log[-3000:]
    return {str(p.relative_to(website.html)): p.read_text(encoding="utf-8")
            for p in website.html.rglob("*.html") if "_static" not in p.parts}


def test_the_full_icon_bundle_is_not_served(website, html):
    served = website.html / "_static" / "scripts" / "fontawesome.js"
    assert served.stat().st_size < THEME_BUNDLE.stat().st_size / 20, "the whole bundle is served"
    assert not served.with_suffix(".js.map").exists()  # it would map the whole bundle
    assert SUBSET_ENTRY.search(served.read_text()), "no icon table in the served script"


def test_every_icon_a_page_names_is_in_the_subset(website, html):
    subset = set(SUBSET_ENTRY.findall((website.html / "_static" / "scripts" / "fontawesome.js").read_text()))
    missing, used = [], set()
    for page, text in html.items():
        for classes in CLASS.findall(text):
            classes = classes.split()
            styles = [STYLES[c] for c in classes if c in STYLES]
            if styles:
                names = {(styles[0], c[3:]) for c in classes if c.startswith("fa-") and c not in STYLES}
                used |= names & subset
                if not names & subset:
                    missing.append(f"{page}: {' '.join(classes)}")
    assert not missing, "icons the subset lacks:\n" + "\n".join(missing)
    assert {("fas", "bars"), ("fas", "list"), ("fas", "magnifying-glass")} <= used  # the theme's own
    # and those the theme's scripts create (the close button of an announcement, say)
    for script in (website.html / "_static" / "scripts").glob("*.js"):
        if script.name != "fontawesome.js":
            for style, name in SCRIPT_ICON.findall(script.read_text(encoding="utf-8")):
                assert (STYLES[style], name) in subset, f"{script.name} creates fa-{name}"


def test_every_page_loads_the_icon_fonts_cut_down(html):
    """The cut fonts must be declared after the theme's full ones, or the browser loads those."""
    themed = {page: text for page, text in html.items() if "styles/pydata-sphinx-theme.css" in text}
    assert themed, "no page links the theme's style sheet"
    for page, text in themed.items():
        theme = text.find("styles/pydata-sphinx-theme.css")
        assert theme < text.find("_static/fontawesome-subset.css"), f"{page}: no cut fonts after the theme's"


def test_pages_with_maths_load_only_mathjax_components_that_exist(website, html):
    with_maths = {page: text for page, text in html.items() if "_static/mathjax/" in text}
    assert with_maths, "no page loads MathJax"
    for page, text in with_maths.items():
        assert "mathjax/tex-chtml.js" not in text, f"{page} still loads the combined MathJax"
        assert re.search(r'<script defer="defer" src="[./]*_static/mathjax/startup\.js">', text), page
        components = json.loads(MATHJAX_CONFIG.search(text)[1])["loader"]["load"]
        for component in components:
            assert (website.html / "_static" / "mathjax" / f"{component}.js").is_file(), component


def test_the_build_fails_on_an_icon_font_awesome_lacks(tmp_path):
    extension = lean_assets()
    (tmp_path / "page.html").write_text('<i class="fa-solid fa-bars"></i>\n'
                                        '<i class="theme-switch fa-solid fa-no-such-icon fa-lg"></i>\n')
    with pytest.raises(RuntimeError, match=r"page\.html: .*fa-no-such-icon"):
        extension.used_icons(tmp_path, extension.read_bundle(THEME_BUNDLE))
    (tmp_path / "page.html").write_text('<span class="fab fa-github"></span>')
    assert set(extension.used_icons(tmp_path, extension.read_bundle(THEME_BUNDLE))) == {("fab", "github")}
