"""Time one LeNet-5 training epoch fed by normlab's tf.data pipeline and by NumPy arrays.

The source article trains with ``model.fit(x=trainX, y=trainY, batch_size=256)``: Keras slices
the uint8 arrays batch by batch. ``normlab.data.pipeline`` shuffles, batches, casts and
prefetches with ``tf.data``, so the next batch is ready while the model trains. Both feed the
same model (a fresh copy each, traced by one warm-up epoch) in the same process, alternating
over several rounds; the script prints the median epoch time of each and their ratio
(pipeline / NumPy; below 1 means faster).

    python benchmarks/lenet_epoch.py [--dataset default] [--norm batch] [--n-train N] [--rounds 3]
"""

import argparse

import timing

from normlab import data, models, runtime

tf, keras = runtime.import_tensorflow()
BATCH_SIZE = 256


def compiled_lenet5(input_shape, norm):
    runtime.set_seed(0)
    model = models.lenet5(input_shape, norm=norm)
    model.compile(optimizer="adam", metrics=["acc"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="default", choices=data.NAMES)
    parser.add_argument("--norm", default="batch", choices=models.NORMS)
    parser.add_argument("--n-train", type=int, default=None, help="a subset (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    ds = data.load(args.dataset).subsample(args.n_train)
    x, y = ds.x_train, ds.y_train
    pipeline = data.pipeline(x, y, BATCH_SIZE, shuffle_seed=0)
    epochs = {
        "normlab.data.pipeline": lambda model: model.fit(pipeline, shuffle=False, verbose=0),
        "model.fit(numpy arrays)": lambda model: model.fit(x, y, batch_size=BATCH_SIZE, verbose=0),
    }
    trained = {}
    for name, epoch in epochs.items():
        trained[name] = compiled_lenet5(x.shape[1:], args.norm)
        epoch(trained[name])  # warm-up: traces the training step
    medians = timing.alternate(
        {name: lambda epoch=epoch, model=trained[name]: epoch(model) for name, epoch in epochs.items()},
        args.rounds)
    timing.report(f"{runtime.device_summary()}; LeNet-5 (norm={args.norm}) on {len(x):,} {ds.title} "
                  f"images, batch {BATCH_SIZE}, median of {args.rounds} epochs", medians, "s/epoch",
                  ratio=("normlab.data.pipeline", "model.fit(numpy arrays)", "pipeline / numpy"))


if __name__ == "__main__":
    main()
