"""The pilot that chose the scale of chapter 6's degradation experiment.

He et al.'s ordering (plain-56 trains worse than plain-20, ResNet-56 better than ResNet-20) takes
thousands of steps to show. This trains the four networks once (seed 0) at a candidate scale and
prints their training accuracy over the epochs, so that the chapter's seeds are spent at a scale
where the ordering can show. The runs go through normlab's cache: the chapter reuses the ones
whose config it shares.

    python benchmarks/degradation_pilot.py [--epochs 20] [--width 8] [--pool 2] [--n-train 10000]
        [--kinds plain resnet] [--warmup STEPS]
"""

import argparse

import numpy as np

from normlab import data, runtime, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--pool", type=int, default=2, help="average the images over pool x pool pixels")
    parser.add_argument("--n-train", type=int, default=10_000, help="0: the whole training split")
    parser.add_argument("--kinds", nargs="+", default=["plain", "resnet"], choices=["plain", "resnet"])
    parser.add_argument("--depths", type=int, nargs=2, default=(20, 56))
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: one epoch)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runtime.setup(seed=0)
    ds = data.load("default")
    ds = ds.pooled(args.pool) if args.pool > 1 else ds
    n_train = args.n_train or len(ds.x_train)
    steps_per_epoch = -(-n_train // 128)
    steps = args.epochs * steps_per_epoch
    config = train.RunConfig(
        model="resnet", options={"width": args.width, "norm": "batch_fused", "weight_decay": 1e-4},
        inputs="standardized", optimizer="sgd", learning_rate=0.1, batch_size=128,
        epochs=args.epochs, n_train=args.n_train or None, n_test=2_000,
        probes=("response_std", "update_ratio"), probe_every=steps_per_epoch,
        warmup_steps=args.warmup or steps_per_epoch, decay_steps=(steps // 2, steps * 3 // 4))
    print(f"{ds.title}, {ds.x_train.shape[1]}x{ds.x_train.shape[2]} px, width {args.width}, "
          f"{n_train:,} images, {args.epochs} epochs of {steps_per_epoch} steps")
    every = max(1, args.epochs // 5)
    for shortcuts in [kind == "resnet" for kind in args.kinds]:
        for depth in args.depths:
            record = train.run(config.but(depth=depth, shortcuts=shortcuts, seed=args.seed), ds)
            acc = record.metric("acc")
            name = f"{'resnet' if shortcuts else 'plain'}-{depth}"
            curve = " ".join(f"{a:.3f}" for a in acc[every - 1::every])
            print(f"{name:10s} train acc every {every} epochs: {curve}; final loss "
                  f"{record.metric('loss')[-1]:.3f}, test acc {record.metric('val_acc')[-1]:.3f}, "
                  f"{np.sum(record.train_seconds):.0f} s", flush=True)


if __name__ == "__main__":
    main()
