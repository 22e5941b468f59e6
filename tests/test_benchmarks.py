"""The benchmark scripts run and report a ratio (their timings are read by people, not asserted)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bn_step_benchmark_prints_the_ratio():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bn_step.py"), "--shapes", "8x4x4x2", "8x3",
         "--steps", "1", "--rounds", "1"],
        capture_output=True, text=True, check=True)
    assert "input (8, 4, 4, 2)" in result.stdout and "input (8, 3)" in result.stdout
    assert result.stdout.count("ratio fused / keras: ") == 2 and result.stderr == ""
    assert "x * weight (any layer's floor)" in result.stdout
    differences = [float(value.split()[-1]) for line in result.stdout.splitlines()
                   if line.startswith("largest difference from float64: ")
                   for value in line.split(": ", 1)[1].split(", ")]
    assert len(differences) == 4 and max(differences) < 1e-5  # fused and Keras, per shape


def test_probe_cost_benchmark_prints_each_probe_in_training_steps():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "probe_cost.py"), "--widths", "2", "2", "2",
         "--rounds", "1"],
        capture_output=True, text=True, check=True)
    for probe in ("loss and gradients", "internal covariate shift", "landscape walk"):
        assert f"ratio {probe} / training step: " in result.stdout
    assert result.stderr == ""


def test_lenet_epoch_benchmark_prints_the_ratios():
    command = [sys.executable, str(ROOT / "benchmarks" / "lenet_epoch.py"), "--dataset", "fashion_mnist",
               "--n-train", "512", "--rounds", "1"]
    norms = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "normlab.layers.FusedBatchNorm" in norms.stdout and "on 512 Fashion-MNIST images" in norms.stdout
    for ratio in ("keras / no normalization", "fused / keras", "fused / no normalization"):
        assert f"ratio {ratio}: " in norms.stdout
    feeds = subprocess.run([*command, "--compare", "feeds"], capture_output=True, text=True, check=True)
    assert "model.fit(numpy arrays)" in feeds.stdout and "ratio pipeline / numpy: " in feeds.stdout
    assert norms.stderr == feeds.stderr == ""


def test_the_degradation_pilot_prints_each_networks_training_accuracy(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "degradation_pilot.py"), "--epochs", "4",
         "--width", "2", "--n-train", "512", "--depths", "8", "14", "--kinds", "resnet"],
        capture_output=True, text=True, check=True, env={**os.environ, "NORMLAB_CACHE": str(tmp_path)})
    assert re.search(r"\d+x\d+ px, width 2, 512 images, 4 epochs of 4 steps", result.stdout)
    for name in ("resnet-8", "resnet-14"):
        curve = r"[0-9.]+ [0-9.]+ [0-9.]+ [0-9.]+"  # one accuracy per epoch
        assert re.search(rf"^{name} +train acc every 1 epochs: {curve}; final loss", result.stdout, re.M)
    assert "plain" not in result.stdout and result.stderr == ""


def chapter_times():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import chapter_times
    finally:
        sys.path.pop(0)
    return chapter_times


def test_the_intro_shows_the_stored_chapter_times():
    times = chapter_times()
    results = json.loads(times.RESULTS.read_text())
    shown = times.TABLE.read_text()
    assert shown == times.table(results), "run: benchmarks/chapter_times.py --table-only"
    chapters = {p.stem for p in (ROOT / "book").glob("[0-9]*.ipynb")}
    for machine in results.values():
        assert set(machine) <= chapters
    # what the tests cost is known for every chapter
    smoke = {chapter for machine in results.values() for chapter, by_profile in machine.items()
             if "smoke" in by_profile}
    assert smoke == chapters, f"not measured yet: {sorted(chapters - smoke)}"
    assert "not measured" not in shown and shown.count("| ch. |") == 1
    rows = [line for line in shown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(chapters) + 1
    # the table names chapters by number only: the intro includes it below a list that gives each
    # number its chapter, in the order of the table
    intro = (ROOT / "book" / "intro.md").read_text()
    assert intro.index("{include} chapter_times.md") > intro.index("9. {doc}`09_")
    for number, chapter in enumerate(sorted(chapters), start=1):
        assert f"\n{number}. {{doc}}`{chapter}`" in intro
        assert rows[number].startswith(f"| {{doc}}`{number} <{chapter}>` |")


def synthetic_times(chapters):
    """Three machines: A timed the full profile of every chapter, B the smoke profile of all but
    the first (and one chapter's full profile), C the smoke profile of two chapters; nobody timed
    a warm smoke run."""
    return {
        "A machine(R) Processor, 2 cores": {c: {"full": {"cold": 60.0, "warm": 2.0}} for c in chapters},
        "B machine, 4 cores": {
            **{c: {"smoke": {"cold": 10.0}} for c in chapters[1:]},
            chapters[1]: {"smoke": {"cold": 10.0}, "full": {"cold": 1.0, "warm": 1.0}},
        },
        "C machine, 8 cores": {c: {"smoke": {"cold": 3.0}} for c in chapters[:2]},
    }


def test_the_table_takes_each_column_from_the_machine_that_measured_most_of_it():
    times = chapter_times()
    chapters = sorted(p.stem for p in (ROOT / "book").glob("[0-9]*.ipynb"))
    results = synthetic_times(chapters)
    assert times.sources(results) == {("full", "cold"): "A machine(R) Processor, 2 cores",
                                      ("full", "warm"): "A machine(R) Processor, 2 cores",
                                      ("smoke", "cold"): "B machine, 4 cores"}
    lines = times.table(results).splitlines()
    assert lines[2] == ("Full profile measured on A machine, 2 cores; "
                        "smoke profile, cold runs on B machine, 4 cores. "
                        "Times in m:ss, or h:mm:ss from an hour up.")
    assert lines[4] == "| ch. | full cold | full warm | smoke cold |"  # no column of nothing
    assert lines[5] == "|---:|---:|---:|---:|"
    rows = lines[6:]
    assert len(rows) == len(chapters) + 1
    assert rows[0].startswith(f"| {{doc}}`1 <{chapters[0]}>` |")
    assert rows[0].endswith("| 1:00 | 0:02 | \N{EN DASH} |")  # B did not time chapter 1; C's is not used
    assert rows[1].endswith("| 1:00 | 0:02 | 0:10 |")  # A's full times, not B's
    # a sum only where its machine measured every chapter
    full_cold, full_warm = times.clock(60.0 * len(chapters)), times.clock(2.0 * len(chapters))
    assert rows[-1] == f"| **all** | {full_cold} | {full_warm} | \N{EN DASH} |"
    assert "not measured" not in "\n".join(lines)


def test_the_table_names_a_machine_per_column_when_a_profile_is_split():
    times = chapter_times()
    chapters = sorted(p.stem for p in (ROOT / "book").glob("[0-9]*.ipynb"))
    both = {"cold": 1.0, "warm": 1.0}
    results = {"X, 2 cores": {c: {"full": {"cold": 5.0}, "smoke": both} for c in chapters},
               "Y, 2 cores": {c: {"full": {"warm": 5.0}} for c in chapters}}
    lines = times.table(results).splitlines()
    assert lines[2].startswith("Full profile, cold runs and smoke profile measured on X, 2 cores; "
                               "full profile, warm runs on Y, 2 cores. ")
    assert lines[4] == "| ch. | full cold | full warm | smoke cold | smoke warm |"
    assert times.table({}).splitlines()[-1] == "No chapter has been timed yet."
    # of two machines that timed as many chapters, the first by name, whatever the file's order
    tie = {"Z, 2 cores": {chapters[0]: {"full": both}}, "W, 2 cores": {chapters[1]: {"full": both}}}
    assert set(times.sources(tie).values()) == {"W, 2 cores"}


def test_the_whole_book_is_the_sum_once_every_chapter_is_measured():
    times = chapter_times()
    chapters = sorted(p.stem for p in (ROOT / "book").glob("[0-9]*.ipynb"))
    measured = {chapter: {"full": {"cold": 60.0, "warm": 1.0}} for chapter in chapters}
    assert times.total(measured, "full", "cold") == 60.0 * len(chapters)
    assert times.total(measured, "smoke", "cold") is None
    del measured[chapters[0]]
    assert times.total(measured, "full", "warm") is None
    assert times.table({"a machine": measured}).splitlines()[-1] == (
        "| **all** | \N{EN DASH} | \N{EN DASH} |")


def test_chapter_times_read_as_durations():
    duration = chapter_times().duration
    assert [duration(s) for s in (9.4, 59.6, 61, 3599, 3600 + 125, None)] == [
        "9 s", "1 min 00 s", "1 min 01 s", "59 min 59 s", "1 h 02 min", "not measured"]


def test_the_table_shows_times_as_a_clock_does():
    clock = chapter_times().clock
    assert [clock(s) for s in (9.4, 59.6, 61, 3599, 3600 + 125, 7081.9, None)] == [
        "0:09", "1:00", "1:01", "59:59", "1:02:05", "1:58:02", "\N{EN DASH}"]


def test_machine_names_read_without_trademark_signs():
    machine = chapter_times().machine
    assert machine("Intel(R) Xeon(R) Processor, 2 cores") == "Intel Xeon, 2 cores"
    assert machine("Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz, 16 cores, Tesla T4") == (
        "Intel Xeon E5-2690 v4 @ 2.60GHz, 16 cores, Tesla T4")
    assert machine("AMD EPYC, 2 cores") == "AMD EPYC, 2 cores"


def test_profile_benchmark_times_each_layer():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_lenet.py"), "--dataset", "fashion_mnist",
         "--norm", "batch", "--steps", "2", "--top", "3"],
        capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert "norm=batch: ms per step" in result.stdout and result.stderr == ""
    layers = {line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")}
    assert {"conv1", "norm1", "pool1", "fc1", "logits", "other"} <= layers
    assert sum(" norm" in line for line in lines if line.startswith("    ")) == 3  # the top ops


def test_parallel_kernels_benchmark_prints_the_ratio():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "parallel_kernels.py"), "--dataset", "fashion_mnist",
         "--n-train", "512", "--epochs", "1", "--rounds", "1", "--delay", "0"],
        capture_output=True, text=True, check=True)
    assert "2 processes, " in result.stdout and "ratio parallel / one: " in result.stdout
