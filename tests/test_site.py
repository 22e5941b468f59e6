"""Checks of the built website as a reader sees it: every page of the TOC, on a desktop and a phone,
in the light and the dark theme, in headless Chromium with the network cut off (the book must work
offline and leak no request); plus a link check and the Colab links, which need no browser.

Each page is visited once per viewport and theme; the small tests below assert on what that visit
measured. Screenshots go to _build/site-screenshots/ (or $NORMLAB_SCREENSHOTS).
"""

import os
import re
import shutil
import threading
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from PIL import Image

from normlab import plots, readers

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:
    sync_playwright = None

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome")
NO_BROWSER = (
    "no browser: apt-get install chromium (or put google-chrome on PATH)"
    if CHROMIUM is None
    else "Playwright not importable: pip install -r requirements.txt"
    if sync_playwright is None
    else None
)
SCREENSHOTS = Path(os.environ.get("NORMLAB_SCREENSHOTS") or ROOT / "_build" / "site-screenshots")


PAGES = list(readers.load_book(ROOT).pages)  # in reading order: "book/intro", ...
CHAPTERS = [p for p in PAGES if (ROOT / p).with_suffix(".ipynb").exists()]
VIEWPORTS = {
    1280: {"viewport": {"width": 1280, "height": 900}},
    390: {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
          "has_touch": True},
}
THEMES = ("light", "dark")
CASES = [(page, width, theme) for page in PAGES for width in VIEWPORTS for theme in THEMES]


def case_name(page, width, theme):
    return f"{Path(page).name}-{width}-{theme}"


CASE_IDS = [case_name(*case) for case in CASES]
ARTICLE = "article.bd-article"  # the column that holds a page's text, between the two sidebars

# Resolves once MathJax has typeset the page (or says why not): measurements come after that.
MATHJAX_DONE = """async () => {
    await document.fonts.ready;
    const ready = window.MathJax?.startup?.promise;
    if (!ready) return window.MathJax ? "MathJax never started" : "no MathJax on the page";
    const late = new Promise(done => setTimeout(() => done("MathJax timed out after 15 s"), 15000));
    return Promise.race([ready.then(() => "typeset"), late]);
}"""

# Figures load lazily, when scrolled to: scroll to each one and wait until it is decoded.
LOAD_FIGURES = """async (selector) => {
    for (const img of document.querySelectorAll(`${selector} img`)) {
        img.scrollIntoView({block: "center"});
        await Promise.race([img.decode().catch(() => null), new Promise(done => setTimeout(done, 5000))]);
    }
    window.scrollTo(0, 0);
}"""

# Everything the checks need from one visit, measured in the DOM.
MEASURE = r"""({desktop, width, column: selector}) => {
    const article = document.querySelector(selector);
    const oneLine = text => text.trim().replace(/\s+/g, " ").slice(0, 60);
    const tex = e => window.MathJax?.startup?.document?.getMathItemsWithin?.(e)?.[0]?.math;
    const describe = (e, what) => {
        const classes = [...e.classList].slice(0, 2).map(c => "." + c).join("");
        const id = e.id ? "#" + e.id : "";
        const cell = e.closest(".cell_output") ? "output " : e.closest(".cell_input") ? "code " : "";
        const text = oneLine(tex(e) ?? e.textContent);
        return `${cell}${e.tagName.toLowerCase()}${id}${classes} "${text}": ${what}`;
    };
    // The nearest ancestor below `top` that scrolls or clips horizontally, if any.
    const container = (e, top) => {
        for (let a = e.parentElement; a && a !== top; a = a.parentElement)
            if (getComputedStyle(a).overflowX !== "visible") return a;
        return null;
    };
    const h1 = article?.querySelector("h1");
    const found = {
        title: document.title.trim(),
        h1: h1 ? h1.textContent.replace(/#$/, "").trim() : "",
        theme: document.documentElement.dataset.theme,
        icon: !!document.querySelector('link[rel~="icon"]'),
        hasArticle: !!article,
    };
    if (!article) return found;

    const maths = [...article.querySelectorAll(".math")];
    found.mathCount = maths.length;
    found.untypeset = maths.filter(e => !e.querySelector("mjx-container"))
        .map(e => describe(e, "not typeset"));
    found.rawTex = [];
    const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    for (let node; (node = walker.nextNode());) {
        const parent = node.parentElement, raw = /\\\(|\\\[|\$\$/.test(node.data);
        const skip = parent.closest(".math, pre, code, script, style, mjx-container");
        if (raw && !skip && parent.checkVisibility()) found.rawTex.push(oneLine(node.data));
    }

    // Display maths, tables, code and outputs, figures, headings, and whatever scrolls them.
    const column = article.getBoundingClientRect();
    const boxes = new Set();
    const wanted = 'mjx-container[display="true"], div.math, table, pre, figure, img, h1, h2, h3, h4, h5, h6';
    for (const e of article.querySelectorAll(wanted)) {
        boxes.add(e);
        const outer = container(e, article);
        if (outer) boxes.add(outer);
    }
    found.overflow = [];
    const report = (e, what) => found.overflow.push(describe(e, what));
    for (const e of boxes) {
        if (!e.checkVisibility()) continue;
        const overflowX = getComputedStyle(e).overflowX;
        const extra = e.scrollWidth - e.clientWidth;
        const widths = `scrollWidth ${e.scrollWidth} > clientWidth ${e.clientWidth} (+${extra} px)`;
        if (e.clientWidth > 0 && extra > 1) {
            if (overflowX === "hidden" || overflowX === "clip") report(e, `clipped, ${widths}`);
            else if (overflowX === "visible") report(e, `content spills out, ${widths}`);
            else if (desktop) report(e, `scrolls inside, ${widths}`);
        }
        const box = e.getBoundingClientRect();
        const span = b => `${Math.round(b.left)}..${Math.round(b.right)} px`;
        if (!container(e, article) && (box.right > column.right + 1 || box.left < column.left - 1))
            report(e, `box ${span(box)} is outside the column ${span(column)}`);
    }

    // On a phone the layout viewport grows to fit the page, so compare with the device's width.
    found.pageWidth = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
    const sticksOut = e => e.getBoundingClientRect().right > width + 1;
    found.widePage = found.pageWidth <= width + 1 ? [] : [...document.body.querySelectorAll("*")]
        .filter(e => sticksOut(e) && !sticksOut(e.parentElement) && !container(e, document.body)
                     && e.checkVisibility() && getComputedStyle(e).position !== "fixed")
        .slice(0, 10).map(e => describe(e, `reaches ${Math.round(e.getBoundingClientRect().right)} px`));

    // The picture itself: the dark theme pads figures with a white card.
    const pictureSize = img => {
        const box = img.getBoundingClientRect(), style = getComputedStyle(img);
        const sum = (...sides) => sides.reduce((total, side) => total + parseFloat(style[side]), 0);
        return [box.width - sum("paddingLeft", "paddingRight", "borderLeftWidth", "borderRightWidth"),
                box.height - sum("paddingTop", "paddingBottom", "borderTopWidth", "borderBottomWidth")];
    };
    found.images = [...article.querySelectorAll("img")].map(img => {
        const [shownWidth, shownHeight] = pictureSize(img);
        return {
            src: img.getAttribute("src"), loaded: img.complete && img.naturalWidth > 0,
            current: img.currentSrc, alt: img.getAttribute("alt"), loading: img.getAttribute("loading"),
            natural: img.naturalWidth, attribute: img.getAttribute("width") || img.style.width || null,
            shown: Math.round(shownWidth * 10) / 10, visible: img.checkVisibility(),
            aspect: shownHeight / shownWidth, naturalAspect: img.naturalHeight / img.naturalWidth,
        };
    });

    // Markdown that reached the reader as text: table rows, bold marks, code or role backticks,
    // directive fences. Code, maths and outputs are left out: there these characters are content.
    const markdown = [
        [/(^|\s)\|(\s.*)?\s\|(\s|$)|\|\s*:?-{3,}/, "a table row"], [/\*\*/, "bold marks"],
        [/`/, "a backtick"], [/\{[a-z][\w:.-]*\}/, "a role"], [/:::/, "a directive fence"],
    ];
    found.rawMarkdown = [];
    const texts = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    for (let node; (node = texts.nextNode());) {
        const parent = node.parentElement;
        if (parent.closest("pre, code, .math, mjx-container, script, style, .cell_output")) continue;
        for (const [pattern, what] of markdown)
            if (pattern.test(node.data) && parent.checkVisibility())
                found.rawMarkdown.push(`${what}: "${oneLine(node.data)}"`);
    }

    // An output aligned in columns (two spaces inside a line only ever align) must keep its lines:
    // as many rendered lines as it has lines of text.
    found.brokenColumns = [];
    for (const pre of article.querySelectorAll(".cell_output pre")) {
        const lines = pre.textContent.replace(/\n$/, "").split("\n");
        if (!lines.some(line => /\S {2,}\S/.test(line)) || !pre.checkVisibility()) continue;
        const style = getComputedStyle(pre);
        const inner = pre.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
        const rendered = Math.round(inner / parseFloat(style.lineHeight));
        if (rendered > lines.length)
            found.brokenColumns.push(describe(pre, `${lines.length} lines shown as ${rendered}`));
    }

    // A display equation's number beside it takes width the equation needs on a phone.
    found.numbersBeside = [...article.querySelectorAll("div.math")].flatMap(math => {
        const number = math.querySelector(".eqno"), equation = math.querySelector("mjx-container");
        if (!number || !equation) return [];
        const a = number.getBoundingClientRect(), b = equation.getBoundingClientRect();
        return a.bottom > b.top + 1 ? [describe(math, `number ${number.textContent.trim()} beside it`)] : [];
    });
    found.h1Size = h1 ? parseFloat(getComputedStyle(h1).fontSize) : 0;
    found.offScreen = [...document.querySelectorAll(".prev-next-area *")]
        .filter(e => e.checkVisibility() && e.getBoundingClientRect().right > width + 0.5)
        .map(e => describe(e, `reaches ${Math.round(e.getBoundingClientRect().right)} px`));
    return found;
}"""


def fail_listing(case, what, problems, screenshot=None, limit=40):
    """One failure naming the case and listing every problem (up to `limit`), not just the first."""
    if problems:
        lines = [f"  {p}" for p in problems[:limit]]
        if len(problems) > limit:
            lines.append(f"  ... and {len(problems) - limit} more")
        if screenshot:
            lines.append(f"screenshot: {screenshot}")
        pytest.fail(f"{case}: {len(problems)} {what}\n" + "\n".join(lines), pytrace=False)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def site(website):
    """The built book served over HTTP on 127.0.0.1, as a reader's browser would load it."""
    assert (website.html / "book" / "intro.html").exists(), website.log[-3000:]
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(website.html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    if NO_BROWSER:
        pytest.skip(NO_BROWSER)
    with sync_playwright() as playwright:
        # containers often give /dev/shm only 64 MB, too little for Chromium's shared memory
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def context(browser):
    """One browser context per (viewport width, theme), made on first use."""
    made = {}

    def get(width, theme):
        if (width, theme) not in made:
            made[width, theme] = browser.new_context(color_scheme=theme, **VIEWPORTS[width])
        return made[width, theme]

    yield get
    for each in made.values():
        each.close()


def open_page(context, url):
    """A page whose requests to anywhere but 127.0.0.1 are aborted and recorded, with its console
    errors and failed loads recorded too."""
    page = context.new_page()
    page.external, page.errors = [], []

    def route(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            page.external.append(route.request.url)
            route.abort()

    def console(message):
        if message.type == "error":
            where = message.location.get("url", "")
            page.errors.append(f"console: {message.text}" + (f" ({where})" if where else ""))

    page.route("**/*", route)
    page.on("console", console)
    page.on("pageerror", lambda error: page.errors.append(f"page error: {error}"))
    page.on("response", lambda r: r.status >= 400 and page.errors.append(f"HTTP {r.status}: {r.url}"))
    page.goto(url, wait_until="load")
    return page


@pytest.fixture(scope="session")
def screenshots(request):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield SCREENSHOTS
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nscreenshots of the website: {SCREENSHOTS}")


@pytest.fixture(scope="session")
def visit(website, site, context, screenshots):
    """Measures each page once per viewport and theme (cached), after MathJax finished."""
    found = {}

    def measure(page_name, width, theme):
        key = (page_name, width, theme)
        if key not in found:
            page = open_page(context(width, theme), f"{site}{page_name}.html")
            mathjax = page.evaluate(MATHJAX_DONE)
            page.evaluate(LOAD_FIGURES, ARTICLE)
            result = page.evaluate(MEASURE, {"desktop": width >= 1000, "width": width, "column": ARTICLE})
            if not result["icon"] and not (website.html / "favicon.ico").exists():
                # A browser with a window (not a headless one) then asks for /favicon.ico.
                page.errors.append("HTTP 404: /favicon.ico (the page has no <link rel=icon>)")
            result.update(mathjax=mathjax, external=page.external, errors=page.errors,
                          screenshot=screenshots / f"{case_name(page_name, width, theme)}.png")
            page.screenshot(path=result["screenshot"], full_page=True, scale="css", animations="disabled")
            page.close()
            found[key] = result
        return found[key]

    return measure


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_page_has_its_title_and_theme(visit, page, width, theme):
    """The default mode "auto" follows the reader's system setting."""
    found = visit(page, width, theme)
    problems = [] if found["hasArticle"] else [f"no {ARTICLE} on the page"]
    problems += [] if found["title"] else ["empty <title>"]
    problems += [] if found["h1"] else ["no h1 with text in the article"]
    if found["theme"] != theme:
        problems.append(f"data-theme is {found['theme']!r}, wanted {theme!r}")
    fail_listing(case_name(page, width, theme), "problems", problems, found["screenshot"])


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_no_request_leaves_the_machine(visit, page, width, theme):
    """A reader offline gets the whole page, and no third party learns who reads it."""
    found = visit(page, width, theme)
    fail_listing(case_name(page, width, theme), "requests to other hosts (aborted)", found["external"])


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_maths_is_typeset_offline(visit, page, width, theme):
    found = visit(page, width, theme)
    problems = [*found.get("untypeset", []), *(f"raw TeX visible: {t!r}" for t in found.get("rawTex", []))]
    if problems:
        problems.insert(0, f"{found['mathCount']} .math elements; MathJax: {found['mathjax']}")
    fail_listing(case_name(page, width, theme), "maths problems", problems, found["screenshot"])


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_nothing_is_wider_than_its_column(visit, page, width, theme):
    """On a desktop everything fits the column; on a phone code, tables and equations may scroll
    inside themselves, but the page itself never scrolls sideways and nothing is cut off unseen."""
    found = visit(page, width, theme)
    problems = list(found.get("overflow", []))
    if found.get("widePage") or found.get("pageWidth", 0) > width + 1:
        problems.append(f"the page scrolls sideways: {found['pageWidth']} px wide on a {width} px screen, "
                        "because of:")
        problems += [f"  {culprit}" for culprit in found["widePage"]]
    fail_listing(case_name(page, width, theme), "elements wider than the column", problems,
                 found["screenshot"])


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_figures_load_at_their_intended_size(visit, page, width, theme):
    """A hi-dpi figure carries its width (half its pixels) in a width attribute or style; shown much
    narrower on a desktop, its labels become unreadable; on a phone it shrinks, but never out of
    proportion."""
    problems = []
    for img in visit(page, width, theme).get("images", []):
        name = Path(img["src"]).name[:16]
        if not img["loaded"]:
            problems.append(f"{name}: did not load")
            continue
        try:
            intended = float(img["attribute"].removesuffix("px"))
        except (AttributeError, ValueError):
            intended = img["natural"]
        if img["visible"] and abs(img["aspect"] / img["naturalAspect"] - 1) > 0.02:
            problems.append(f"{name}: squashed, height/width {img['aspect']:.2f} "
                            f"instead of {img['naturalAspect']:.2f}")
        if width >= 1000 and img["visible"] and img["shown"] < 0.85 * intended:
            problems.append(f"{name}: shown {img['shown']} px of {intended:g} px "
                            f"({img['shown'] / intended:.0%}; natural {img['natural']} px)")
    fail_listing(case_name(page, width, theme), "figure problems", problems,
                 visit(page, width, theme)["screenshot"])


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_figure_text_is_legible_where_it_is_shown(website, visit, page, width, theme):
    """normlab.plots.show records the smallest text of each drawing in its PNG, in CSS px at the
    drawing's natural width (half its pixels); shown narrower, the text shrinks with it. A phone
    (which gets its own drawing) must show it at 9 px or more, a desktop at 11 px or more."""
    least = plots.SMALLEST_TEXT_PX["phone" if width < 1000 else "desktop"]
    problems = []
    for img in visit(page, width, theme).get("images", []):
        if not img["visible"] or not img["loaded"]:
            continue
        shown_file = website.html / unquote(urlsplit(img["current"]).path).lstrip("/")
        name = shown_file.name[:16]
        with Image.open(shown_file) as png:
            recorded, natural = png.text.get("normlab:smallest-text-px"), png.width / 2
        if recorded is None:
            problems.append(f"{name}: no record of its smallest text (not shown by normlab.plots.show)")
            continue
        smallest = float(recorded) * min(1.0, img["shown"] / natural)
        if smallest < least:
            problems.append(f"{name}: smallest text {smallest:.1f} px (drawn at {float(recorded):.1f} px, "
                            f"shown at {img['shown']:g} of {natural:g} px), under {least:g} px")
    fail_listing(case_name(page, width, theme), "figures with text too small to read", problems,
                 visit(page, width, theme)["screenshot"])


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_figures_are_described_and_load_when_scrolled_to(visit, page, width, theme):
    """A screen reader reads a figure's alt text: its caption, not its file name."""
    problems = []
    for img in visit(page, width, theme).get("images", []):
        name = Path(img["src"]).name[:16]
        if not img["alt"] or re.search(r"\.(png|svg|jpe?g)$|_images/", img["alt"]):
            problems.append(f"{name}: alt text {img['alt']!r}")
        if img["loading"] != "lazy":
            problems.append(f"{name}: loading={img['loading']!r}, not 'lazy'")
    fail_listing(case_name(page, width, theme), "figure problems", problems)


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_no_raw_markdown_is_visible(visit, page, width, theme):
    """Table pipes, ** or backticks in the text mean Markdown that was pasted but not rendered."""
    found = visit(page, width, theme)
    fail_listing(case_name(page, width, theme), "pieces of unrendered Markdown", found.get("rawMarkdown", []),
                 found["screenshot"])


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_outputs_aligned_in_columns_keep_their_lines(visit, page, width, theme):
    """A table printed by a cell is only a table while its lines stay whole."""
    found = visit(page, width, theme)
    fail_listing(case_name(page, width, theme), "aligned outputs whose lines wrap",
                 found.get("brokenColumns", []), found["screenshot"])


@pytest.mark.parametrize("page", PAGES, ids=[Path(p).name for p in PAGES])
def test_a_phone_gives_its_width_to_the_page(visit, page):
    """On a phone an equation's number sits above it, the title leaves room for the text, and the
    previous/next links (chevrons included) stay on the screen."""
    found = visit(page, 390, "light")
    problems = list(found.get("numbersBeside", []))
    if found.get("h1Size", 0) > 32:
        problems.append(f"the title is {found['h1Size']:g} px high (at most 32 px on a phone)")
    problems += found.get("offScreen", [])
    fail_listing(case_name(page, 390, "light"), "problems on a phone", problems, found["screenshot"])


@pytest.mark.parametrize(("page", "width", "theme"), CASES, ids=CASE_IDS)
def test_no_console_errors(visit, page, width, theme):
    found = visit(page, width, theme)
    fail_listing(case_name(page, width, theme), "console errors or failed loads", found["errors"])


def becomes_true(page, script, timeout=3000):
    try:
        page.wait_for_function(script, timeout=timeout)
        return True
    except PlaywrightError:
        return False


def click_visible(page, selector):
    """Clicks the one visible `selector` (the theme also emits hidden copies); False if none is."""
    visible = page.locator(selector).filter(visible=True)
    if visible.count() != 1:
        return False
    visible.click()
    return True


DIALOG_OPEN = """([dialog, links]) => {
    const modal = document.querySelector(dialog);
    return modal?.open && modal.checkVisibility()
        && [...modal.querySelectorAll("a")].filter(a => a.checkVisibility()).length >= links;
}"""


def opens_dialog(tab, toggle, dialog, links):
    """Whether clicking the visible `toggle` shows `dialog` with at least `links` visible links, and
    if not, why."""
    if not click_visible(tab, toggle):
        return False, f"no single visible {toggle}"
    if becomes_true(tab, f"() => ({DIALOG_OPEN})({[dialog, links]})"):
        return True, ""
    return False, tab.evaluate(f"() => document.querySelector('{dialog}')?.outerHTML.slice(0, 100)")


@pytest.mark.parametrize("page", CHAPTERS, ids=[Path(p).name for p in CHAPTERS])
def test_phone_menu_button_opens_the_chapter_list(site, context, page):
    tab = open_page(context(390, "light"), f"{site}{page}.html")
    opened, state = opens_dialog(tab, ".primary-toggle", "#pst-primary-sidebar-modal", len(PAGES) - 1)
    tab.close()
    assert opened, f"clicking the visible ☰ did not open the chapter list; {state}"


@pytest.mark.parametrize("page", CHAPTERS, ids=[Path(p).name for p in CHAPTERS])
def test_phone_contents_button_opens_on_this_page(site, context, page):
    tab = open_page(context(390, "light"), f"{site}{page}.html")
    opened, state = opens_dialog(tab, ".secondary-toggle", "#pst-secondary-sidebar-modal", 1)
    tab.close()
    assert opened, f"clicking the visible contents button did not open 'On this page'; {state}"


@pytest.mark.parametrize("page", CHAPTERS, ids=[Path(p).name for p in CHAPTERS])
def test_phone_contents_close_when_a_section_is_chosen(site, context, page):
    """The drawer must not stay over the section the reader asked for."""
    tab = open_page(context(390, "light"), f"{site}{page}.html")
    opened, state = opens_dialog(tab, ".secondary-toggle", "#pst-secondary-sidebar-modal", 1)
    assert opened, f"clicking the visible contents button did not open 'On this page'; {state}"
    links = tab.locator("#pst-secondary-sidebar-modal a[href^='#']").filter(visible=True)
    target = links.last.get_attribute("href")
    links.last.click()
    closed = becomes_true(tab, "() => !document.querySelector('#pst-secondary-sidebar-modal').open")
    scrolled = becomes_true(tab, f"() => location.hash === {target!r} && window.scrollY > 0")
    tab.close()
    assert closed, f"choosing {target} left 'On this page' open over the page"
    assert scrolled, f"choosing {target} did not scroll the page to it"


@pytest.mark.parametrize("page", CHAPTERS, ids=[Path(p).name for p in CHAPTERS])
def test_desktop_menu_button_collapses_the_sidebar(site, context, page):
    tab = open_page(context(1280, "light"), f"{site}{page}.html")
    assert click_visible(tab, ".primary-toggle"), "no single visible .primary-toggle (the ☰ button)"
    collapsed = becomes_true(tab, """() => {
        const sidebar = document.querySelector("#pst-primary-sidebar");
        const box = sidebar.getBoundingClientRect();
        return !sidebar.checkVisibility({visibilityProperty: true}) || box.width < 1 || box.right <= 0;
    }""")
    tab.close()
    assert collapsed, "clicking the visible ☰ left the primary sidebar open"


def test_search_finds_the_moving_averages_chapter(site, context):
    tab = open_page(context(1280, "light"), f"{site}search.html?q=moving+average")
    becomes_true(tab, "() => document.querySelector('#search-results ul.search li a')"
                      " || /found|no documents|did not match/i.test("
                      "document.querySelector('#search-results')?.innerText ?? '')", timeout=15000)
    links = tab.eval_on_selector_all("#search-results ul.search li > a", "links => links.map(a => a.href)")
    summary = tab.evaluate("() => document.querySelector('#search-results')?.innerText.slice(0, 200)")
    tab.close()
    assert any("04_inference_moving_averages.html" in link for link in links), (links, summary)


class Links(HTMLParser):
    """The ids (and <a name>s) of a page, and its href/src links: relative ones and absolute ones."""

    def __init__(self, text):
        super().__init__()
        self.ids, self.links, self.absolute = set(), [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.update(v for k, v in attrs.items() if k == "id" or (tag == "a" and k == "name"))
        for key in ("href", "src"):
            value = attrs.get(key)
            if value is not None:
                relative = not urlsplit(value).scheme and not value.startswith("//")
                (self.links if relative else self.absolute).append(value)


def test_relative_links_resolve(website):
    """Every relative link of the site leads to a file that exists, and to an anchor it has."""
    html = website.html
    pages = [p for p in html.rglob("*.html") if p.relative_to(html).parts[0] not in ("_static", "_sources")]
    assert pages, website.log[-3000:]
    parsed = {}

    def parse(path):
        if path not in parsed:
            parsed[path] = Links(path.read_text(encoding="utf-8", errors="replace"))
        return parsed[path]

    broken = []
    for page in sorted(pages):
        for link in parse(page).links:
            parts = urlsplit(link)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if parts.path.endswith("/"):
                target = target / "index.html"
            where = f"{page.relative_to(html)}: {link}"
            if not target.is_file():
                broken.append(f"{where} (no such file)")
            elif target.suffix == ".html" and unquote(parts.fragment) not in {"", *parse(target).ids}:
                broken.append(f"{where} (no id {unquote(parts.fragment)!r} there)")
    fail_listing("the built site", "broken relative links", broken, limit=100)


@pytest.mark.parametrize("page", CHAPTERS, ids=[Path(p).name for p in CHAPTERS])
def test_colab_link_opens_the_chapters_reader_notebook(website, page):
    """Colab opens the reader notebook (notebooks/book/), from the configured repository and branch."""
    repository = urlsplit(CONFIG["repository"]["url"]).path.strip("/").removesuffix(".git")
    name = Path(page).name
    expected = (f"https://colab.research.google.com/github/{repository}/blob/"
                f"{CONFIG['repository']['branch']}/notebooks/book/{name}.ipynb")
    links = [link for link in Links((website.html / f"{page}.html").read_text()).absolute
             if "colab.research.google.com/github/" in link]
    assert links and set(links) == {expected}, f"Colab links {links}, wanted {expected}"
    assert (ROOT / "notebooks" / "book" / f"{name}.ipynb").is_file(), "the reader notebook is missing"


@pytest.mark.parametrize("page", CHAPTERS, ids=[Path(p).name for p in CHAPTERS])
def test_the_pages_notebook_download_is_the_reader_notebook(website, page):
    """The download button offers what Colab opens: plain Markdown, not MyST roles."""
    download = website.html / "_sources" / f"{page}.ipynb"
    reader = ROOT / "notebooks" / f"{page}.ipynb"
    assert download.is_file(), "the page offers no notebook to download"
    assert download.read_bytes() == reader.read_bytes(), f"{download.name} is not notebooks/{page}.ipynb"
