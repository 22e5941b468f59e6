"""Where a LeNet-5 training step spends its time, per layer and per TensorFlow op, from the profiler.

For each normalization (``none``, Keras's ``batch``, normlab's ``batch_fused`` by default) the
script trains LeNet-5 for a few steps to trace it, then records ``--steps`` more under
``tf.profiler`` and adds up the op events of TensorFlow's executor threads. It prints, per step:
each layer's forward and backward time (the optimizer's update and the metrics are "other"), and
the ops that take longest inside the normalization layers. The times are wall times of ops, which
overlap when two run at once, so the columns need not add up to the step time; compare layers and
models with each other, in one run of the script.

    python benchmarks/profile_lenet.py [--norm none batch batch_fused] [--steps 40] [--top 8]
"""

import argparse
import collections
import re
import tempfile
from pathlib import Path

from lenet_epoch import compiled_lenet5

from normlab import data, models, runtime

tf, _ = runtime.import_tensorflow()
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402  (after the quiet import)

BATCH_SIZE = 256
LAYER = re.compile(r"^(conv|norm|pool|relu|fc|flatten|logits)\d*$")


def profile(model, batches, logdir: Path) -> xplane_pb2.XSpace:
    """Train one epoch over ``batches`` under the profiler and return what it recorded."""
    tf.profiler.experimental.start(str(logdir))
    try:
        model.fit(batches, epochs=1, shuffle=False, verbose=0)
    finally:
        tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(next(logdir.rglob("*.xplane.pb")).read_bytes())
    return space


def op_times(space: xplane_pb2.XSpace) -> collections.Counter:
    """Milliseconds per op, keyed by ``(layer, pass, op type)``, from the executor threads."""
    totals = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names[event.metadata_id]
                if "::" in name or "/" not in name:  # the executor's own bookkeeping, not an op
                    continue
                path, _, op = name.rpartition(":")
                parts = [re.sub(r"_\d+$", "", part) for part in path.split("/")]
                layer = next((part for part in parts if LAYER.match(part)), "other")
                direction = "backward" if "gradient_tape" in parts else "forward"
                totals[layer, direction if layer != "other" else "", op] += event.duration_ps / 1e9
    return totals


def report(norm: str, totals: collections.Counter, steps: int, top: int) -> None:
    by_layer = collections.defaultdict(collections.Counter)
    for (layer, direction, _), ms in totals.items():
        by_layer[layer][direction] += ms / steps
    print(f"\nnorm={norm}: ms per step, {sum(totals.values()) / steps:.1f} in all ops")
    print(f"  {'layer':10s} {'forward':>8s} {'backward':>9s}")
    for layer in sorted(by_layer, key=lambda name: (name == "other", name)):
        times = by_layer[layer]
        if layer == "other":
            print(f"  {layer:10s} {times['']:8.2f}")
        else:
            print(f"  {layer:10s} {times['forward']:8.2f} {times['backward']:9.2f}")
    norm_ops = collections.Counter()
    for (layer, direction, op), ms in totals.items():
        if layer.startswith("norm"):
            norm_ops[f"{layer} {direction} {op}"] += ms / steps
    for name, ms in norm_ops.most_common(top):
        print(f"    {ms:6.2f}  {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="default", choices=data.NAMES)
    parser.add_argument("--norm", nargs="+", default=["none", "batch", "batch_fused"], choices=models.NORMS)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--top", type=int, default=8, help="normalization ops listed per model")
    args = parser.parse_args()

    ds = data.load(args.dataset).subsample(BATCH_SIZE * args.steps)
    batches = data.pipeline(ds.x_train, ds.y_train, BATCH_SIZE, shuffle_seed=0)
    print(f"{runtime.device_summary()}; LeNet-5 on {ds.title} ({ds.x_train.shape[1:]} images), "
          f"batch {BATCH_SIZE}, {args.steps} steps profiled")
    for norm in args.norm:
        model = compiled_lenet5(ds.x_train.shape[1:], norm)
        model.fit(batches.take(2), shuffle=False, verbose=0)  # trace the training step
        with tempfile.TemporaryDirectory(prefix="normlab-profile-") as logdir, runtime.quiet():
            space = profile(model, batches, Path(logdir))  # quiet: the profiler logs to stderr
        report(norm, op_times(space), args.steps, args.top)


if __name__ == "__main__":
    main()
