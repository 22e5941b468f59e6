"""What chapter 7's probes cost against the training they measure, on its VGG and one batch.

In one process and in turns: one training step (``train_on_batch``), one loss-and-gradient
evaluation as every probe takes it, and the two probes that take several, internal covariate
shift (a gradient per weight layer) and the landscape walk (a gradient per step size). A run
that probes every ``probe_every`` steps pays the two probes once per that many training steps.

    python benchmarks/probe_cost.py [--widths 16 32 64] [--norm batch] [--rounds 5]
"""

import argparse

import numpy as np
import timing

from normlab import models, probes, runtime

tf, keras = runtime.import_tensorflow()
BATCH_SIZE = 128  # chapter 7's
STEP, GRADIENT = "training step", "loss and gradients"
ICS, LANDSCAPE = "internal covariate shift", "landscape walk"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, nargs=3, default=(16, 32, 64))
    parser.add_argument("--norm", default="batch", choices=models.NORMS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    runtime.set_seed(0)
    model = models.vgg((32, 32, 3), norm=args.norm, widths=tuple(args.widths))
    model.compile(optimizer=keras.optimizers.SGD(0.02, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=models.returns_logits(model)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH_SIZE, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, BATCH_SIZE)
    loss = probes._loss(model, None)
    steps = [m * 0.02 for m in probes.STEP_MULTIPLES]
    contenders = {
        STEP: lambda: model.train_on_batch(x, y),
        GRADIENT: lambda: probes._gradients(model, x, y, model.trainable_variables, loss),
        ICS: lambda: probes.internal_covariate_shift(model, x, y),
        LANDSCAPE: lambda: probes.loss_landscape(model, x, y, steps),
    }
    for run in contenders.values():
        run()  # traces
    times = timing.alternate(contenders, args.rounds)
    ratios = [(name, STEP, f"{name} / training step") for name in (GRADIENT, ICS, LANDSCAPE)]
    timing.report(f"{runtime.device_summary()}; VGG {args.widths}, norm={args.norm}, batch "
                  f"{BATCH_SIZE}, {args.rounds} rounds", times, "ms", *ratios, scale=1000)


if __name__ == "__main__":
    main()
