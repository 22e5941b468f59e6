"""Time every chapter end to end, as a reader runs it, and write the table the intro page shows.

For each chapter and profile the script runs the chapter twice on a copy (the committed notebook
is not touched): *cold*, with an empty results cache, so that every training run is computed,
then *warm*, with the cache the cold run filled, so that every run is loaded. The times are merged
into ``benchmarks/chapter_times.json`` (one entry per machine, profile and chapter: a later
measurement replaces an earlier one) and ``book/chapter_times.md`` is rewritten from it: one table,
the full profile's columns then the smoke profile's, each column taken from the machine that
measured the most chapters of it, and a sentence above it that names those machines.

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
COLUMNS = [(profile, cache) for profile in ("full", "smoke") for cache in ("cold", "warm")]
MISSING = "\N{EN DASH}"  # a chapter its column's machine has not measured


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


def clock(seconds: float | None) -> str:
    """A duration as a clock shows it, m:ss or h:mm:ss: narrow enough for five columns on a phone."""
    if seconds is None:
        return MISSING
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def book_chapters() -> list[str]:
    """Every chapter of the book, in order: the rows of the table."""
    return sorted(p.stem for p in (ROOT / "book").glob("[0-9]*.ipynb"))


def total(chapters: dict, profile: str, cache: str) -> float | None:
    """The whole book's time in one column: the sum over every chapter, once all are measured."""
    times = [chapters.get(chapter, {}).get(profile, {}).get(cache) for chapter in book_chapters()]
    return None if None in times else sum(times)


def measured(chapters: dict, profile: str, cache: str) -> int:
    """How many chapters of the book one machine has measured in one column."""
    return sum(chapters.get(chapter, {}).get(profile, {}).get(cache) is not None
               for chapter in book_chapters())


def sources(results: dict) -> dict[tuple[str, str], str]:
    """The machine each column is taken from: the one that measured the most chapters of it (of
    two that measured as many, the first by name). A column no machine measured is left out."""
    chosen = {}
    for column in COLUMNS:
        counts = {name: measured(chapters, *column) for name, chapters in sorted(results.items())}
        best = max(counts, key=counts.get, default=None)
        if best is not None and counts[best]:
            chosen[column] = best
    return chosen


def machine(name: str) -> str:
    """A machine's name as a sentence reads it: without trademark signs or the word "Processor"."""
    name = re.sub(r"\((R|TM|tm)\)", "", name)
    name = re.sub(r"\b(Processor|CPU)\b", " ", name)
    return re.sub(r"\s+", " ", name).replace(" ,", ",").strip()


def provenance(chosen: dict[tuple[str, str], str]) -> str:
    """The sentence above the table: which machine measured which columns."""
    parts = []
    for name in dict.fromkeys(chosen.values()):
        columns = [column for column in COLUMNS if chosen.get(column) == name]
        what = []
        for profile in dict.fromkeys(p for p, _ in columns):
            caches = [c for p, c in columns if p == profile]
            what.append(f"{profile} profile" if len(caches) == 2 else f"{profile} profile, {caches[0]} runs")
        parts.append((" and ".join(what), machine(name)))
    first, *rest = parts
    sentence = f"{first[0]} measured on {first[1]}"
    sentence += "".join(f"; {what} on {name}" for what, name in rest)
    return sentence[0].upper() + sentence[1:] + "."


def table(results: dict) -> str:
    """Markdown: one table, a row per chapter (its number, a link to it) and one for the whole book,
    the full profile's cold and warm columns then the smoke profile's, each column from the machine
    that measured the most of it, named in a sentence above the table. Narrow enough for a phone:
    chapter numbers without titles (the intro lists them), m:ss times, headers of two short words."""
    lines = ["<!-- written by benchmarks/chapter_times.py from benchmarks/chapter_times.json -->", ""]
    chosen = sources(results)
    if not chosen:
        return "\n".join([*lines, "No chapter has been timed yet."]) + "\n"
    columns = list(chosen)
    lines += [f"{provenance(chosen)} Times in m:ss, or h:mm:ss from an hour up.", "",
              "| ch. | " + " | ".join(f"{p} {c}" for p, c in columns) + " |",
              "|---:|" + "---:|" * len(columns)]
    for chapter in book_chapters():
        cells = [clock(results[chosen[column]].get(chapter, {}).get(column[0], {}).get(column[1]))
                 for column in columns]
        lines.append(f"| {{doc}}`{int(chapter[:2])} <{chapter}>` | " + " | ".join(cells) + " |")
    cells = [clock(total(results[chosen[column]], *column)) for column in columns]
    lines.append("| **all** | " + " | ".join(cells) + " |")
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
