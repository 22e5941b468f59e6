"""Time one LeNet-5 training epoch: what batch norm costs in the model, or what feeding it costs.

``--compare norms`` (the default) trains LeNet-5 without normalization, with
``keras.layers.BatchNormalization`` and with ``normlab.layers.FusedBatchNorm``, all fed by
``normlab.data.pipeline``; it prints the fused layer's epoch against the two others.
``--compare feeds`` trains one LeNet-5 (``--norm``) fed by ``normlab.data.pipeline`` (``tf.data``
shuffles, batches, casts and prefetches, so the next batch is ready while the model trains) and
by NumPy arrays, as the source article does with ``model.fit(x=trainX, y=trainY, batch_size=256)``.

Every contender is a fresh model traced by one warm-up epoch; all run in the same process,
alternating over several rounds, and the script prints the median and the fastest epoch time of
each and their ratios (below 1 means faster).

    python benchmarks/lenet_epoch.py [--compare norms|feeds] [--dataset default] [--norm batch]
                                     [--n-train N] [--rounds 3]
"""

import argparse

import timing

from normlab import data, models, runtime

tf, keras = runtime.import_tensorflow()
BATCH_SIZE = 256
NONE, KERAS, FUSED = "no normalization", "keras.layers.BatchNormalization", "normlab.layers.FusedBatchNorm"
NORMS = {NONE: "none", KERAS: "batch", FUSED: "batch_fused"}


def compiled_lenet5(input_shape, norm):
    runtime.set_seed(0)
    model = models.lenet5(input_shape, norm=norm)
    model.compile(optimizer="adam", metrics=["acc"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def comparison(compare, x, y, norm):
    """``({name: model}, {name: one epoch of a model}, ratios)`` for ``--compare``."""
    pipeline = data.pipeline(x, y, BATCH_SIZE, shuffle_seed=0)

    def fit(model):
        model.fit(pipeline, shuffle=False, verbose=0)

    if compare == "norms":
        ratios = [(KERAS, NONE, "keras / no normalization"), (FUSED, KERAS, "fused / keras"),
                  (FUSED, NONE, "fused / no normalization")]
        return ({name: compiled_lenet5(x.shape[1:], kind) for name, kind in NORMS.items()},
                dict.fromkeys(NORMS, fit), ratios)
    epochs = {"normlab.data.pipeline": fit,
              "model.fit(numpy arrays)": lambda model: model.fit(x, y, batch_size=BATCH_SIZE, verbose=0)}
    return ({name: compiled_lenet5(x.shape[1:], norm) for name in epochs}, epochs,
            [("normlab.data.pipeline", "model.fit(numpy arrays)", "pipeline / numpy")])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", default="norms", choices=("norms", "feeds"))
    parser.add_argument("--dataset", default="default", choices=data.NAMES)
    parser.add_argument("--norm", default="batch", choices=models.NORMS, help="the model of --compare feeds")
    parser.add_argument("--n-train", type=int, default=None, help="a subset (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    ds = data.load(args.dataset).subsample(args.n_train)
    trained, epochs, ratios = comparison(args.compare, ds.x_train, ds.y_train, args.norm)
    for name, epoch in epochs.items():
        epoch(trained[name])  # warm-up: traces the training step
    times = timing.alternate(
        {name: lambda epoch=epoch, model=trained[name]: epoch(model) for name, epoch in epochs.items()},
        args.rounds)
    model = "LeNet-5" if args.compare == "norms" else f"LeNet-5 (norm={args.norm})"
    timing.report(f"{runtime.device_summary()}; {model} on {len(ds.x_train):,} {ds.title} images, "
                  f"batch {BATCH_SIZE}, {args.rounds} epochs each", times, "s/epoch", *ratios)


if __name__ == "__main__":
    main()
