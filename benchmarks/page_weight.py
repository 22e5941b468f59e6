"""Measure what a reader downloads to read each page of the built website: its page weight.

A reader on a slow or metered connection pays for every byte a page loads, and a theme or a
maths renderer can weigh far more than the text. The script serves a built site on 127.0.0.1,
opens every page of the table of contents in headless Chromium, each in a fresh browser context
(a cold cache, as a first visit), at 1280x900, scrolls to the bottom so that lazily loaded images
load too, waits until the network is idle, and adds up the body size of every response by kind.
Requests that would leave the machine are blocked and not counted. It prints one Markdown table,
a row per page, the kinds that weigh most first, then the largest files (1 kB = 1000 bytes).

    python benchmarks/page_weight.py                     # the site in _build/html
    python benchmarks/page_weight.py SITE_DIR --json weights.json
"""

import argparse
import json
import shutil
import threading
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from normlab import readers

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"document": "html", "script": "js", "stylesheet": "css", "font": "font", "image": "image"}
SUFFIXES = {".html": "html", ".js": "js", ".css": "css", ".woff": "font", ".woff2": "font",
            ".ttf": "font", ".png": "image", ".svg": "image", ".jpg": "image", ".gif": "image"}
# Scrolls a screen at a time to the bottom, so that lazily loaded content is requested.
SCROLL = """async () => {
    for (let y = 0; y < document.body.scrollHeight; y += innerHeight) {
        scrollTo(0, y);
        await new Promise(done => setTimeout(done, 50));
    }
    scrollTo(0, document.body.scrollHeight);
    await window.MathJax?.startup?.promise;
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def kind(response) -> str:
    """html, js, css, font, image or other, as the browser requested it (or by file suffix)."""
    found = KINDS.get(response.request.resource_type)
    return found or SUFFIXES.get(Path(urlsplit(response.url).path).suffix, "other")


def weigh(browser, url: str) -> tuple[Counter, dict[str, int]]:
    """Bytes by kind and bytes by file of one cold visit of ``url``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", lambda route: route.continue_()
                  if urlsplit(route.request.url).hostname == "127.0.0.1" else route.abort())
    page = context.new_page()
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto(url, wait_until="load")
    page.evaluate(SCROLL)
    page.wait_for_load_state("networkidle")
    by_kind, by_file = Counter(), {}
    for response in responses:
        try:
            length = len(response.body())
        except PlaywrightError:  # a redirect or an aborted request has no body
            continue
        by_kind[kind(response)] += length
        by_file[urlsplit(response.url).path] = length
    context.close()
    return by_kind, by_file


def size(n: int) -> str:
    return "\N{EN DASH}" if n == 0 else f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def table(weights: dict[str, Counter]) -> str:
    """One Markdown row per page: its total, then each kind, the heaviest over all pages first."""
    overall = sum(weights.values(), Counter())
    kinds = [k for k, _ in overall.most_common()]
    lines = ["| page | total | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 2) + "|"]
    for page, by_kind in weights.items():
        cells = [size(by_kind.total())] + [size(by_kind[k]) for k in kinds]
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", type=Path, default=ROOT / "_build" / "html",
                        help="a built site folder (default: _build/html)")
    parser.add_argument("--json", type=Path, help="also write the bytes by page and kind here")
    parser.add_argument("--files", type=int, default=8, help="how many of the largest files to list")
    args = parser.parse_args()
    pages = list(readers.load_book(ROOT).pages)
    missing = [p for p in pages if not (args.site / f"{p}.html").exists()]
    if missing:
        parser.error(f"{args.site} has no {missing[0]}.html: build the book first")

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(args.site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    weights, files = {}, {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                                 args=["--disable-dev-shm-usage"])
            for page in pages:
                url = f"http://127.0.0.1:{server.server_port}/{page}.html"
                weights[page], by_file = weigh(browser, url)
                files.update(by_file)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()

    print(f"Page weight of {len(pages)} pages, each loaded cold at 1280x900\n")
    print(table(weights))
    print(f"\nThe {args.files} largest files any page loads:\n")
    print("| file | size |\n|---|---|")
    for path, n in sorted(files.items(), key=lambda item: -item[1])[:args.files]:
        print(f"| {path} | {size(n)} |")
    if args.json:
        args.json.write_text(json.dumps({p: dict(w, total=w.total()) for p, w in weights.items()},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
