"""Time one batch-norm training step, forward and backward, with Keras's layer and normlab's fused one.

For each input shape (by default the four activations that LeNet-5 normalizes on CIFAR-10, two
conv and two dense, a 16-channel conv activation and a wide dense one), both layers run in the
same process on the same input, each compiled with ``tf.function``, alternating over several
rounds, beside a layer that only multiplies by a weight: the fixed cost of any layer's step, which
small activations cannot go below. The script prints the median and the fastest step time of
each, the ratios fused / Keras (below 1 means faster) and each layer's largest difference from a
float64 NumPy computation of the same step.

    python benchmarks/bn_step.py [--shapes 256x32x32x6 256x120 ...] [--steps 50] [--rounds 5]
"""

import argparse

import numpy as np
import timing

from normlab import layers, runtime

tf, keras = runtime.import_tensorflow()
FUSED, KERAS = "normlab.layers.FusedBatchNorm", "keras.layers.BatchNormalization"
FLOOR = "x * weight (any layer's floor)"
LENET5_CIFAR10 = ("256x32x32x6", "256x16x16x16", "256x120", "256x84")
EPSILON = 1e-3  # both layers' default


class Scale(keras.layers.Layer):
    """``x * gamma``: one weight, one operation forward, two backward."""

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")

    def call(self, inputs, training=False):
        return inputs * self.gamma


def step_function(layer, x, upstream):
    """One compiled training step: the output, and the gradients for x and the layer's weights of
    a loss whose gradient for the output is ``upstream``."""
    layer.build(x.shape)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return [y, *tape.gradient(y, [x, *layer.trainable_weights], output_gradients=upstream)]

    step()  # trace once
    return step


def run_steps(step, steps):
    for _ in range(steps):
        results = step()
    results[0].numpy()  # wait for the last step


def float64_step(x, upstream):
    """Output and gradients (x, gamma, beta) of batch norm with gamma = 1, beta = 0, in float64."""
    x, dy = np.asarray(x, np.float64), np.asarray(upstream, np.float64)
    axes = tuple(range(x.ndim - 1))
    inv_std = 1 / np.sqrt(x.var(axis=axes) + EPSILON)
    normalized = (x - x.mean(axis=axes)) * inv_std
    dbeta, dgamma = dy.sum(axis=axes), (dy * normalized).sum(axis=axes)
    dx = inv_std * (dy - (dbeta + normalized * dgamma) / (x.size // x.shape[-1]))
    return [normalized, dx, dgamma, dbeta]


def largest_difference(step, reference):
    """The largest difference in the output and the gradients of one step, each relative to the
    largest value of the reference's tensor (sums over many values round more)."""
    return max(float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b))))
               for a, b in zip(map(np.asarray, step()), reference, strict=True))


def shape(text):
    return tuple(int(size) for size in text.split("x"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", type=shape,
                        default=[shape(s) for s in (*LENET5_CIFAR10, "256x32x32x16", "256x1024")])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    print(f"{runtime.device_summary()}; forward + backward, {args.rounds} rounds "
          f"of {args.steps} steps")
    for input_shape in args.shapes:
        x = tf.constant(np.random.default_rng(0).normal(size=input_shape).astype("float32"))
        upstream = tf.constant(np.random.default_rng(1).normal(size=input_shape).astype("float32"))
        steps = {KERAS: step_function(keras.layers.BatchNormalization(epsilon=EPSILON), x, upstream),
                 FUSED: step_function(layers.FusedBatchNorm(epsilon=EPSILON), x, upstream),
                 FLOOR: step_function(Scale(), x, upstream)}
        times = timing.alternate(
            {name: lambda step=step: run_steps(step, args.steps) for name, step in steps.items()},
            args.rounds)
        timing.report(f"input {input_shape}", times, "ms/step", (FUSED, KERAS, "fused / keras"),
                      scale=1000 / args.steps)
        reference = float64_step(x, upstream)
        print("largest difference from float64: " + ", ".join(
            f"{name.split('.')[-1]} {largest_difference(steps[name], reference):.1e}"
            for name in (FUSED, KERAS)))


if __name__ == "__main__":
    main()
