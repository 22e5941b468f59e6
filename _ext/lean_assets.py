"""Serve the pages only the icons and the MathJax they use: registered in ``_config.yml``.

The pydata theme makes every page load Font Awesome's whole icon script
(``_static/scripts/fontawesome.js``: 1.5 MB, every icon of Font Awesome Free) to draw about
twenty icons, and its style sheet declares Font Awesome's icon fonts, which a page downloads
(270 kB) for the glyphs it shows before that script has run and for the icons the theme draws in
CSS (admonitions, breadcrumbs). When a build finishes, this extension

* lists the icons the built pages use (``<i class="fa-solid fa-bars">``) and those the theme's
  scripts create (``"fa-solid fa-xmark"``), takes their outlines from the theme's own bundle and
  writes over the bundle a script of a few kB that turns those elements into inline SVGs as Font
  Awesome does (the theme's style sheets expect SVGs). An icon a page names that the bundle does
  not have fails the build;
* writes ``_static/fontawesome-subset.css``: Font Awesome's rules for inline SVGs, and its icon
  fonts cut down to the glyphs of those icons and of the theme's CSS icons, inlined and declared
  after the theme's own, so that the browser uses them instead; a glyph outside the cut still
  comes from the full font (``unicode-range``).

MathJax is loaded as components (``normlab_site.MATHJAX`` is the loader, ``startup.js``): TeX input
with its default packages (any other loads on demand), CommonHTML output and the hidden MathML
that screen readers read. That is ``tex-chtml.js`` without its context menu (430 kB of 1.2 MB),
which typesetting does not need.
"""

import base64
import io
import json
import re
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

MATHJAX_COMPONENTS = ["input/tex", "output/chtml", "a11y/assistive-mml"]
BUNDLE = "scripts/fontawesome.js"  # under the theme's and the site's _static
CSS = "fontawesome-subset.css"
STYLES = {"fa": "fas", "fas": "fas", "fa-solid": "fas", "far": "far", "fa-regular": "far",
          "fab": "fab", "fa-brands": "fab"}  # Font Awesome's style classes and their prefixes
FONTS = {"fas": ("Font Awesome 6 Free", 900, "fa-solid-900.ttf"),
         "far": ("Font Awesome 6 Free", 400, "fa-regular-400.ttf"),
         "fab": ("Font Awesome 6 Brands", 400, "fa-brands-400.ttf")}
WEBFONTS = "vendor/fontawesome/webfonts"
# In the minified bundle each style is an object of icons, then registered: ``d("fas",p)``.
PACK = re.compile(r'var \w+=\{([^{}]*)\};.{0,400}?\w\("(fas|far|fab)",\w\)', re.DOTALL)
ICON = re.compile(r'(?:"(?P<quoted>[^"]+)"|(?P<name>\w+)):\[(?P<width>\d+),(?P<height>\d+),'
                  r'\[(?P<aliases>[^\]]*)\],"(?P<unicode>\w+)","(?P<path>[^"]*)"\]')
CLASS = re.compile(r'\sclass="([^"]*)"')
SCRIPT_ICON = re.compile(r'(?<![\w-])(fa-solid|fa-regular|fa-brands|fas|far|fab) fa-([a-z0-9-]+)')
# The theme's CSS icons: Font Awesome code points, written as escapes or as the characters.
CODE_POINT = re.compile(r'\\([ef][0-9a-f]{3})|([\ue000-\uf8ff])', re.IGNORECASE)
ICON_CLASS_RULES = re.compile(r'(?:\.fa-[\w-]+:(?:before|after),?)+\{content:"[^"]*"\}')
# Font Awesome's own rules for its inline SVGs (the theme's CSS has those for <i> elements).
SVG_RULES = """\
svg:not(:root).svg-inline--fa{overflow:visible;box-sizing:content-box}
.svg-inline--fa{display:var(--fa-display,inline-block);height:1em;overflow:visible;vertical-align:-.125em}
.svg-inline--fa.fa-2xs{vertical-align:.1em}
.svg-inline--fa.fa-xs{vertical-align:0}
.svg-inline--fa.fa-sm{vertical-align:-.0714285705em}
.svg-inline--fa.fa-lg{vertical-align:-.2em}
.svg-inline--fa.fa-xl{vertical-align:-.25em}
.svg-inline--fa.fa-2xl{vertical-align:-.3125em}
.svg-inline--fa.fa-fw{width:var(--fa-fw-width,1.25em)}
"""
# Replaces each icon element of the subset by an inline SVG, now and when one is added later.
SCRIPT = """\
(() => {
  const ICONS = %(icons)s;
  const STYLES = %(styles)s;
  const SVG = "http://www.w3.org/2000/svg";
  const selector = Object.keys(STYLES).map(style => "." + style).join(",");
  let titles = 0;

  function toSvg(element) {
    const classes = [...element.classList];
    const prefix = STYLES[classes.find(c => c in STYLES)];
    const name = classes.filter(c => c.startsWith("fa-")).map(c => c.slice(3))
      .find(n => `${prefix} ${n}` in ICONS);
    if (!name) return;  // not in the subset: the theme's icon font draws it
    const [width, height, d] = ICONS[`${prefix} ${name}`];
    const svg = document.createElementNS(SVG, "svg");
    for (const {name: key, value} of element.attributes)
      if (key !== "class" && key !== "title") svg.setAttribute(key, value);
    const others = classes.filter(c => !(c in STYLES) && c !== `fa-${name}`);
    svg.setAttribute("class", ["svg-inline--fa", `fa-${name}`, ...others].join(" "));
    svg.setAttribute("data-prefix", prefix);
    svg.setAttribute("data-icon", name);
    svg.setAttribute("role", "img");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const title = element.getAttribute("title");
    if (title) {
      const label = svg.appendChild(document.createElementNS(SVG, "title"));
      label.id = `svg-inline--fa-title-${++titles}`;
      label.textContent = title;
      svg.setAttribute("aria-labelledby", label.id);
    } else {
      svg.setAttribute("aria-hidden", "true");
      svg.setAttribute("focusable", "false");
    }
    const path = svg.appendChild(document.createElementNS(SVG, "path"));
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", d);
    element.replaceWith(svg);
  }

  const replaceIn = root => root.querySelectorAll(selector).forEach(toSvg);
  replaceIn(document);
  new MutationObserver(records => records.forEach(record => record.addedNodes.forEach(node => {
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    if (node.matches(selector)) toSvg(node);
    else replaceIn(node);
  }))).observe(document.documentElement, {childList: true, subtree: true});
})();
"""


def load_mathjax_components(app, config):
    config.mathjax3_config = {**(config.mathjax3_config or {}), "loader": {"load": MATHJAX_COMPONENTS}}


def theme_static(app) -> Path:
    """The theme folder's ``static`` that holds Font Awesome's bundle (the pydata theme's)."""
    for folder in app.builder.theme.get_theme_dirs():
        if (Path(folder) / "static" / BUNDLE).is_file():
            return Path(folder) / "static"
    raise RuntimeError(f"no theme of this build has {BUNDLE}: the icon subset cannot be made")


def read_bundle(path: Path) -> dict[tuple[str, str], dict]:
    """Every icon of the bundle by (prefix, name or alias): its width, height, code point, path."""
    icons = {}
    for pack, prefix in PACK.findall(path.read_text()):
        for icon in ICON.finditer(pack):
            found = {"name": icon["quoted"] or icon["name"], "width": int(icon["width"]),
                     "height": int(icon["height"]), "unicode": int(icon["unicode"], 16),
                     "path": icon["path"]}
            for name in [found["name"], *re.findall(r'"([^"]+)"', icon["aliases"])]:
                icons[prefix, name] = found
    if not {prefix for prefix, _ in icons} >= set(FONTS):
        raise RuntimeError(f"{path} is not laid out as this extension expects: no icons read")
    return icons


def used_icons(outdir: Path, icons: dict) -> dict[tuple[str, str], dict]:
    """The icons the built pages name and those the theme's scripts create, by (prefix, name)."""
    used, missing = {}, []
    for page in sorted(outdir.rglob("*.html")):
        for classes in CLASS.findall(page.read_text(encoding="utf-8")):
            classes = classes.split()
            styles = [STYLES[c] for c in classes if c in STYLES]
            if not styles:
                continue
            names = [c[3:] for c in classes if c.startswith("fa-") and c not in STYLES]
            found = [(styles[0], n) for n in names if (styles[0], n) in icons]
            if found:
                used[found[0]] = icons[found[0]]
            else:
                missing.append(f"{page.relative_to(outdir)}: class=\"{' '.join(classes)}\"")
    for script in [*outdir.glob("_static/*.js"), *outdir.glob("_static/scripts/*.js")]:
        if script.name != Path(BUNDLE).name:
            for style, name in SCRIPT_ICON.findall(script.read_text(encoding="utf-8")):
                if (STYLES[style], name) in icons:
                    used[STYLES[style], name] = icons[STYLES[style], name]
                else:
                    missing.append(f"{script.relative_to(outdir)}: {style} fa-{name}")
    if missing:
        raise RuntimeError("icons that Font Awesome Free 6 (the theme's bundle) does not have:\n  "
                           + "\n  ".join(missing))
    return used


def css_code_points(outdir: Path) -> set[int]:
    """The Font Awesome glyphs the site's style sheets draw themselves (admonitions, breadcrumbs)."""
    points = set()
    for sheet in (outdir / "_static").rglob("*.css"):
        if sheet.name == CSS:
            continue
        text = ICON_CLASS_RULES.sub("", sheet.read_text(encoding="utf-8"))
        points |= {int(escape, 16) if escape else ord(char)
                   for escape, char in CODE_POINT.findall(text)}
    return points


def font_faces(webfonts: Path, code_points: dict[str, set[int]]) -> str:
    """@font-face rules for each icon font cut down to its ``code_points`` (those it has), inlined."""
    rules = []
    for prefix, (family, weight, name) in FONTS.items():
        font = TTFont(webfonts / name)
        kept = sorted(code_points[prefix] & set(font.getBestCmap()))
        if not kept:
            continue
        options = subset.Options(flavor="woff", layout_features=[], hinting=False, name_IDs=["*"])
        cutter = subset.Subsetter(options)
        cutter.populate(unicodes=kept)
        cutter.subset(font)
        data = io.BytesIO()
        font.save(data)
        source = "data:font/woff;base64," + base64.b64encode(data.getvalue()).decode()
        ranges = ",".join(f"U+{point:X}" for point in kept)
        rules.append(f'@font-face{{font-family:"{family}";font-style:normal;font-weight:{weight};'
                     f'font-display:block;src:url({source}) format("woff");unicode-range:{ranges}}}')
    return "\n".join(rules) + "\n"


def write_icon_subset(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    static, outdir = theme_static(app), Path(app.outdir)
    icons = used_icons(outdir, read_bundle(static / BUNDLE))
    table = ",\n".join(f"    {json.dumps(f'{prefix} {name}')}: "
                        f"{json.dumps([icon['width'], icon['height'], icon['path']])}"
                        for (prefix, name), icon in sorted(icons.items()))
    licence = (static / f"{BUNDLE}.LICENSE.txt").read_text().strip()
    script = SCRIPT % {"icons": f"{{\n{table}\n  }}", "styles": json.dumps(STYLES)}
    (outdir / "_static" / BUNDLE).write_text(f"{licence}\n{script}")
    (outdir / "_static" / f"{BUNDLE}.map").unlink(missing_ok=True)  # it maps the whole bundle
    # The theme's CSS icons are drawn in the solid and the brands font; each <i> in its own.
    drawn = css_code_points(outdir)
    code_points = {"fas": set(drawn), "far": set(), "fab": set(drawn)}
    for (prefix, _), icon in icons.items():
        code_points[prefix].add(icon["unicode"])
    (outdir / "_static" / CSS).write_text(SVG_RULES + font_faces(static / WEBFONTS, code_points))


def setup(app):
    app.connect("config-inited", load_mathjax_components)
    app.add_css_file(CSS)
    app.connect("build-finished", write_icon_subset)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
