"""LeNet-5 epochs per second: one process with TensorFlow's default threads, against several
processes at once with a share of the cores each, as two chapters executed side by side would be.

Each configuration starts fresh worker processes; every worker traces its training step with one
epoch, waits for a common start time, so that the workers of a configuration train at the same
time, then times ``--epochs`` epochs. A configuration's throughput is its number of workers over
their median epoch time. The configurations alternate over ``--rounds``; the script prints the
median throughput of each and their ratio (above 1: running in parallel trains more per second).

    python benchmarks/parallel_kernels.py [--jobs 2] [--norm batch] [--n-train 20480] [--rounds 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BATCH_SIZE = 256
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def worker(args) -> None:
    """Train, time each epoch, print the times as JSON (the worker side of this script)."""
    from lenet_epoch import compiled_lenet5  # imports TensorFlow: the worker's business only

    from normlab import data

    ds = data.load(args.dataset).subsample(args.n_train)
    batches = data.pipeline(ds.x_train, ds.y_train, BATCH_SIZE, shuffle_seed=0)
    model = compiled_lenet5(ds.x_train.shape[1:], args.norm)
    model.fit(batches, shuffle=False, verbose=0)  # trace the training step
    time.sleep(max(0.0, args.start_at - time.time()))
    seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        model.fit(batches, shuffle=False, verbose=0)
        seconds.append(time.perf_counter() - start)
    print(json.dumps(seconds))


def throughput(args, workers: int, threads: int | None) -> float:
    """Epochs per second of ``workers`` processes training at once, ``threads`` threads each."""
    environment = dict(os.environ)
    if threads is not None:
        environment.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    command = [sys.executable, __file__, "--worker", "--start-at", str(time.time() + args.delay),
               "--dataset", args.dataset, "--norm", args.norm, "--n-train", str(args.n_train),
               "--epochs", str(args.epochs)]
    processes = [subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True)
                 for _ in range(workers)]
    medians = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode:
            raise SystemExit(f"a worker failed with exit code {process.returncode}")
        medians.append(statistics.median(json.loads(out)))
    return workers / statistics.median(medians)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="processes training at once")
    parser.add_argument("--dataset", default="default")
    parser.add_argument("--norm", default="batch")
    parser.add_argument("--n-train", type=int, default=80 * BATCH_SIZE)
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per worker")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delay", type=float, default=30.0,
                        help="seconds from the workers' start to their common start time")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    cores = os.cpu_count() or 1
    one = f"1 process, default threads ({cores} cores)"
    many = f"{args.jobs} processes, {max(1, cores // args.jobs)} thread(s) each"
    rates = {one: [], many: []}
    for _ in range(args.rounds):
        rates[one].append(throughput(args, 1, None))
        rates[many].append(throughput(args, args.jobs, max(1, cores // args.jobs)))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"LeNet-5 (norm={args.norm}), {args.n_train:,} images, batch {BATCH_SIZE}, "
          f"median of {args.rounds} rounds of {args.epochs} epochs")
    for name, rate in medians.items():
        print(f"  {name:36s} {rate:6.3f} epochs/s")
    print(f"ratio parallel / one: {medians[many] / medians[one]:.2f}x")


if __name__ == "__main__":
    main()
