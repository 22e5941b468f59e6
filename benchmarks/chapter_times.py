"""Time every chapter end to end, as a reader runs it, and write the table the intro page shows.

For each chapter and profile the script runs the chapter twice on a copy (the committed notebook
is not touched): *cold*, with an empty results cache, so that every training run is computed,
then *warm*, with the cache the cold run filled, so that every run is loaded. The times are merged
into ``benchmarks/chapter_times.json`` (one entry per machine, profile and chapter: a later
measurement replaces an earlier one) and ``book/chapter_times.md`` is rewritten from it, one table
per machine.

    python benchmarks/chapter_times.py                              # every chapter, smoke and full
    python benchmarks/chapter_times.py book/02_batchnorm_internals.ipynb --profiles smoke
    python benchmarks/chapter_times.py --table-only                  # rewrite the table
"""

import argparse
import json
import re
import tempfile
from pathlib import Path

import nbformat

from normlab import notebooks, readers, runtime
from normlab.train import CACHE_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "chapter_times.json"
TABLE = ROOT / "book" / "chapter_times.md"
COLUMNS = [(profile, cache) for profile in ("smoke", "full") for cache in ("cold", "warm")]


def measure(path: Path, profile: str) -> dict[str, float]:
    """Seconds for a cold then a warm run of one chapter, with a results cache of their own."""
    with tempfile.TemporaryDirectory(prefix="normlab-timing-") as cache:
        return {state: notebooks.run(nbformat.read(path, as_version=4), path.parent, profile,
                                     **{CACHE_VARIABLE: cache})
                for state in ("cold", "warm")}


def measure_in_place(path: Path, profile: str) -> dict[str, float]:
    """Seconds for the chapter's own execution (cold: run after a change that re-keys its runs)
    then a warm run of a copy, both with the book's default results cache."""
    cold = notebooks.execute(path, profile)
    readers.write_reader(path)
    return {"cold": cold, "warm": notebooks.run(nbformat.read(path, as_version=4), path.parent, profile)}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s" if minutes \
        else f"{seconds} s"


def title(chapter: str) -> str:
    """The chapter's H1 heading up to its first colon or comma: short enough for a table row."""
    nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
    return re.split("[:,]", nb.cells[0].source.splitlines()[0].lstrip("# "))[0].strip()


def total(chapters: dict, profile: str, cache: str) -> float | None:
    """The whole book's time in one column: the sum over every chapter, once all are measured."""
    every = [p.stem for p in (ROOT / "book").glob("[0-9]*.ipynb")]
    times = [chapters.get(chapter, {}).get(profile, {}).get(cache) for chapter in every]
    return None if None in times else sum(times)


def table(results: dict) -> str:
    """Markdown: one table per machine, a row per chapter, cold and warm for each profile, and
    the whole book."""
    lines = ["<!-- written by benchmarks/chapter_times.py from benchmarks/chapter_times.json -->"]
    for name, chapters in sorted(results.items()):
        lines += ["", f"**{name}**", "",
                  "| chapter | " + " | ".join(f"{p}, {c}" for p, c in COLUMNS) + " |",
                  "|---|" + "---:|" * len(COLUMNS)]
        for chapter, times in sorted(chapters.items()):
            cells = [duration(times.get(profile, {}).get(cache)) for profile, cache in COLUMNS]
            lines.append(f"| {int(chapter[:2])}. {title(chapter)} | " + " | ".join(cells) + " |")
        cells = [duration(total(chapters, profile, cache)) for profile, cache in COLUMNS]
        lines.append("| **the whole book** | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path,
                        default=sorted((ROOT / "book").glob("[0-9]*.ipynb")))
    parser.add_argument("--profiles", nargs="+", default=["smoke", "full"], choices=["smoke", "full"])
    parser.add_argument("--in-place", action="store_true",
                        help="the cold run executes the chapter itself, into the default results cache")
    parser.add_argument("--table-only", action="store_true",
                        help="rewrite the table from the stored times, measuring nothing")
    args = parser.parse_args()

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.table_only:
        TABLE.write_text(table(results))
        return
    here = results.setdefault(runtime.hardware(), {})
    for profile in args.profiles:
        for path in args.chapters:
            path = path.resolve()
            times = (measure_in_place if args.in_place else measure)(path, profile)
            here.setdefault(path.stem, {})[profile] = times
            print(f"{path.stem:28s} {profile:6s} cold {duration(times['cold']):>14s}   "
                  f"warm {duration(times['warm']):>14s}", flush=True)
            RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
            TABLE.write_text(table(results))


if __name__ == "__main__":
    main()
