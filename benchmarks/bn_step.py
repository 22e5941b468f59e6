"""Time one batch-norm training step, forward and backward, with Keras's layer and normlab's fused one.

Both run in the same process on the same input (by default 256 x 32 x 32 x 16, a LeNet-5-sized
activation), each compiled with ``tf.function``, alternating over several rounds; the script
prints the median step time of each and their ratio (fused / Keras; below 1 means faster).

    python benchmarks/bn_step.py [--batch 256] [--size 32] [--channels 16] [--steps 50] [--rounds 5]
"""

import argparse

import numpy as np
import timing

from normlab import layers, runtime

tf, keras = runtime.import_tensorflow()


def step_function(layer, x):
    layer.build(x.shape)

    upstream = tf.ones_like(x)  # the gradient arriving from the next layer

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x, *layer.trainable_weights], output_gradients=upstream)

    step()  # trace once
    return step


def run_steps(step, steps):
    for _ in range(steps):
        grads = step()
    grads[0].numpy()  # wait for the last step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    shape = (args.batch, args.size, args.size, args.channels)
    x = tf.constant(np.random.default_rng(0).normal(size=shape).astype("float32"))
    fused, keras_bn = "normlab.layers.FusedBatchNorm", "keras.layers.BatchNormalization"
    steps = {keras_bn: step_function(keras.layers.BatchNormalization(), x),
             fused: step_function(layers.FusedBatchNorm(), x)}
    medians = timing.alternate(
        {name: lambda step=step: run_steps(step, args.steps) for name, step in steps.items()}, args.rounds)
    timing.report(f"{runtime.device_summary()}; input {shape}, forward + backward, median of {args.rounds}",
                  medians, "ms/step", (fused, keras_bn, "fused / keras"), scale=1000 / args.steps)

if __name__ == "__main__":
    main()
