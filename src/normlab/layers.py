"""Batch normalization written out: a NumPy reference and a from-scratch Keras 3 layer.

Explained in chapter 2 ("Batch-norm internals"): the NumPy functions are equations (1)-(4)
and their backward pass; :class:`BatchNorm` is the same algorithm as a Keras layer, shown there
to match ``keras.layers.BatchNormalization`` in training, inference and moving statistics.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np

from normlab.runtime import import_tensorflow, int_argument, real_argument

tf, keras = import_tensorflow()
ops = keras.ops


def _statistics_dtype(inputs) -> str:
    """The dtype batch norm computes in for ``inputs``, chosen as ``keras.layers.BatchNormalization``
    chooses it: at least float32, since float16/bfloat16 sums of squares overflow or round away;
    float64 stays float64; integers and booleans become float32. Strings and complex numbers have
    no mean and variance to normalize with (Keras would drop the imaginary part), so they raise.
    """
    dtype = keras.backend.standardize_dtype(inputs.dtype)
    if dtype == "string" or dtype.startswith("complex"):
        raise ValueError(f"batch norm needs real numeric inputs, got an input of dtype {dtype}")
    return keras.backend.result_type(dtype, "float32")


def _feature_axis(ndim: int, axis: int) -> int:
    """Validate ``axis`` for a rank-``ndim`` input and return it as a non-negative index."""
    ndim = int_argument("ndim", ndim)
    if ndim < 2:
        raise ValueError(f"batch norm needs an input of rank >= 2 (batch, features...), got rank {ndim}")
    axis = int_argument("axis", axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an input of rank {ndim}")
    return int(axis) % ndim


def reduction_axes(ndim: int, axis: int = -1) -> tuple[int, ...]:
    """The axes batch norm averages over: every axis except the feature (channel) axis."""
    feature = _feature_axis(ndim, axis)
    return tuple(i for i in range(ndim) if i != feature)


def batch_norm_forward(x, gamma=None, beta=None, *, axis=-1, epsilon=1e-3):
    """Training-mode batch norm, eqs. (1)-(4) of chapter 2; returns ``(y, cache)``.

    Statistics are taken over every axis but ``axis`` with the biased variance, as Keras does.
    ``gamma``/``beta`` default to ones/zeros; ``cache`` feeds :func:`batch_norm_backward`.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    axes = reduction_axes(x.ndim, axis)
    feature = _feature_axis(x.ndim, axis)
    epsilon = real_argument("epsilon", epsilon)
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    n_features = x.shape[feature]
    gamma = np.ones(n_features, x.dtype) if gamma is None else np.asarray(gamma, x.dtype)
    beta = np.zeros(n_features, x.dtype) if beta is None else np.asarray(beta, x.dtype)
    for label, p in (("gamma", gamma), ("beta", beta)):
        if p.shape != (n_features,):
            raise ValueError(f"{label} must have shape ({n_features},), got {p.shape}")

    shape = [1] * x.ndim
    shape[feature] = n_features
    mean = x.mean(axis=axes, keepdims=True)
    variance = x.var(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(variance + epsilon)
    x_hat = (x - mean) * inv_std
    y = gamma.reshape(shape) * x_hat + beta.reshape(shape)
    cache = {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma.reshape(shape), "axes": axes,
             "m": x.size // n_features, "mean": mean.reshape(-1), "variance": variance.reshape(-1)}
    return y, cache


_CACHE_KEYS = frozenset({"x_hat", "inv_std", "gamma", "axes", "m"})  # what the backward pass reads


def batch_norm_backward(dy, cache):
    """Gradients ``(dx, dgamma, dbeta)`` of training-mode batch norm, eq. (6) of chapter 2.

    With m values per feature: dx = gamma/(m*sigma) * (m*dy - sum(dy) - x_hat*sum(dy*x_hat)).
    """
    if not isinstance(cache, dict) or not _CACHE_KEYS <= set(cache):
        problem = (f"missing {', '.join(sorted(_CACHE_KEYS - set(cache)))}" if isinstance(cache, dict)
                   else f"got {type(cache).__name__}")
        raise ValueError("cache must be the dict that batch_norm_forward returns, with keys "
                         f"{', '.join(sorted(_CACHE_KEYS))}: {problem}")
    dy = np.asarray(dy, dtype=cache["x_hat"].dtype)
    x_hat, axes, m = cache["x_hat"], cache["axes"], cache["m"]
    if dy.shape != x_hat.shape:
        raise ValueError(f"dy must have the forward input's shape {x_hat.shape}, got {dy.shape}")
    dbeta = dy.sum(axis=axes, keepdims=True)
    dgamma = (dy * x_hat).sum(axis=axes, keepdims=True)
    dx = cache["gamma"] * cache["inv_std"] / m * (m * dy - dbeta - x_hat * dgamma)
    return dx, dgamma.reshape(-1), dbeta.reshape(-1)


@keras.saving.register_keras_serializable(package="normlab")
class BatchNorm(keras.layers.Layer):
    """Batch normalization from scratch, a drop-in for ``keras.layers.BatchNormalization``.

    In training it normalizes with the batch's mean and biased variance and moves the
    running statistics towards them: ``moving = momentum * moving + (1 - momentum) * batch``.
    In inference (or when the layer is frozen with ``trainable=False``) it uses the running
    statistics. Explained in chapter 2.

    Dtypes follow Keras's layer: the statistics are computed in float32 for float16/bfloat16
    (mixed-precision) and integer inputs, in float64 for float64 ones, and the output has the
    layer's compute dtype; the weights have its variable dtype (float32 under the mixed
    policies) and are never autocast, so the float32 statistics stay float32.

    Args:
        axis: the feature (channel) axis, normalized separately; all others are averaged over.
        momentum: weight of the old value in the moving averages, in [0, 1].
        epsilon: small positive number added to the variance before the square root.
        center: learn an offset ``beta``.
        scale: learn a scale ``gamma``.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers of the four weights.

    Call arguments:
        inputs: a tensor of rank >= 2.
        training: use batch statistics (and update the moving ones) when true.

    Reference:
        Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
        Reducing Internal Covariate Shift", ICML 2015.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        axis = int_argument("axis", axis)
        momentum = real_argument("momentum", momentum)
        epsilon = real_argument("epsilon", epsilon)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        feature = _feature_axis(len(input_shape), self.axis)
        size = input_shape[feature]
        if size is None:
            raise ValueError(f"the feature axis {self.axis} of input shape {input_shape} must be known")
        self.input_spec = keras.layers.InputSpec(ndim=len(input_shape), axes={feature: size})
        self._axes = reduction_axes(len(input_shape), self.axis)
        self._broadcast = [1] * len(input_shape)
        self._broadcast[feature] = size
        # autocast=False: under a mixed policy the weights would otherwise be read as float16
        self.gamma = (self.add_weight(shape=(size,), initializer=self.gamma_initializer, name="gamma",
                                      autocast=False)
                      if self.scale else None)
        self.beta = (self.add_weight(shape=(size,), initializer=self.beta_initializer, name="beta",
                                     autocast=False)
                     if self.center else None)
        self.moving_mean = self.add_weight(shape=(size,), initializer=self.moving_mean_initializer,
                                           trainable=False, name="moving_mean", autocast=False)
        self.moving_variance = self.add_weight(shape=(size,),
                                               initializer=self.moving_variance_initializer,
                                               trainable=False, name="moving_variance", autocast=False)

    def call(self, inputs, training=False):
        x = ops.cast(inputs, _statistics_dtype(inputs))
        if training and self.trainable:
            mean, variance = ops.moments(x, axes=self._axes)
            self._update_moving_statistics(mean, variance)
        else:
            mean, variance = (
                ops.cast(v, x.dtype) for v in (self.moving_mean, self.moving_variance)
            )
        inv_std = ops.rsqrt(ops.reshape(variance, self._broadcast) + self.epsilon)
        y = (x - ops.reshape(mean, self._broadcast)) * inv_std
        if training and self.trainable:
            y = self.adjust(y)
        return ops.cast(self._scale_and_shift(y, self._broadcast), self.compute_dtype)

    def adjust(self, normalized):
        """Hook on the normalized values, in training only, before gamma and beta: the identity.

        Subclasses override it to perturb training-mode outputs (see :class:`AdjustedBatchNorm`).
        """
        return normalized

    def _update_moving_statistics(self, mean, variance):
        m = self.momentum
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * m + ops.cast(batch, moving.dtype) * (1.0 - m))

    def _scale_and_shift(self, y, shape):
        if self.scale:
            y = y * ops.reshape(ops.cast(self.gamma, y.dtype), shape)
        if self.center:
            y = y + ops.reshape(ops.cast(self.beta, y.dtype), shape)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        serialize = keras.initializers.serialize
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": serialize(self.beta_initializer),
            "gamma_initializer": serialize(self.gamma_initializer),
            "moving_mean_initializer": serialize(self.moving_mean_initializer),
            "moving_variance_initializer": serialize(self.moving_variance_initializer),
        }


def _weighted_average(a, b, share):
    """``share * a + (1 - share) * b``, where the side of weight 0 is left out: the statistics of
    an empty set of ghost batches are NaN, and NaN * 0 is NaN."""
    return ops.where(share > 0, a * share, 0.0) + ops.where(share < 1, b * (1.0 - share), 0.0)


@keras.saving.register_keras_serializable(package="normlab")
class GhostBatchNorm(BatchNorm):
    """Ghost batch normalization: Keras 2's ``virtual_batch_size``, which Keras 3 removed.

    In training, the batch of B examples is split into virtual ("ghost") batches of
    ``virtual_batch_size`` = v examples, each normalized with its own statistics (Hoffer et al.,
    2017). As in Keras 2 the split is a reshape to ``(v, B / v, ...)``, so ghost batch j holds
    examples j, j + B/v, j + 2B/v, ... Inference is plain batch norm. Explained in chapter 3.

    Keras 2 required v to divide B; here a batch that it does not divide (the last batch of an
    epoch, say) is split into floor(B / v) ghost batches of v, made by that reshape from its first
    v * floor(B / v) examples, and one more ghost batch of the B mod v examples left at its end (a
    batch smaller than v is one ghost batch). The moving statistics move towards the average of
    the ghost batches' means and variances, each weighted by its number of examples: equal
    weights when v divides B, as in Keras 2, and a small last ghost batch, whose variance is the
    most biased, counts for no more than its examples.

    Args:
        virtual_batch_size: examples per ghost batch.
        **kwargs: as for :class:`BatchNorm` (the feature axis must not be the batch axis).
    """

    def __init__(self, virtual_batch_size, **kwargs):
        super().__init__(**kwargs)
        virtual_batch_size = int_argument("virtual_batch_size", virtual_batch_size)
        if virtual_batch_size < 1:
            raise ValueError(f"virtual_batch_size must be a positive int, got {virtual_batch_size!r}")
        self.virtual_batch_size = virtual_batch_size

    def build(self, input_shape):
        if _feature_axis(len(input_shape), self.axis) == 0:
            raise ValueError("GhostBatchNorm splits the batch axis, so axis must not be 0")
        super().build(input_shape)

    def call(self, inputs, training=False):
        if not (training and self.trainable):
            return super().call(inputs, training=False)
        x = ops.cast(inputs, _statistics_dtype(inputs))
        v = self.virtual_batch_size
        batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]  # unknown when fit traces
        whole = batch // v * v  # the examples in whole ghost batches
        if isinstance(batch, int) and whole in (0, batch):  # a part known to be empty is left out:
            # TensorFlow's gradient of statistics over no examples fails
            y, mean, variance = self._ghost_batches(x) if whole else self._one_ghost_batch(x)
        else:
            y, mean, variance = self._ghost_batches(x[:whole])
            y_rest, mean_rest, variance_rest = self._one_ghost_batch(x[whole:])
            y = ops.concatenate([y, y_rest], axis=0)
            share = ops.cast(whole, x.dtype) / ops.cast(batch, x.dtype)
            mean = _weighted_average(mean, mean_rest, share)
            variance = _weighted_average(variance, variance_rest, share)
        self._update_moving_statistics(mean, variance)
        return ops.cast(self._scale_and_shift(self.adjust(y), self._broadcast), self.compute_dtype)

    def _ghost_batches(self, x):
        """``x`` normalized as ghost batches of ``virtual_batch_size``, which divides its batch,
        and the averages of their means and of their variances."""
        v, features = self.virtual_batch_size, ops.shape(x)[1:]
        ghosts = ops.reshape(x, (v, ops.shape(x)[0] // v, *features))
        axes = (0, *(a + 1 for a in self._axes if a != 0))  # keep axis 1: the ghost index
        mean, variance = ops.moments(ghosts, axes=axes, keepdims=True)
        y = ops.reshape((ghosts - mean) * ops.rsqrt(variance + self.epsilon), ops.shape(x))
        return (y, ops.reshape(ops.mean(mean, axis=1), (-1,)),
                ops.reshape(ops.mean(variance, axis=1), (-1,)))

    def _one_ghost_batch(self, x):
        """``x`` normalized as one ghost batch, and its mean and variance."""
        mean, variance = ops.moments(x, axes=self._axes, keepdims=True)
        y = (x - mean) * ops.rsqrt(variance + self.epsilon)
        return y, ops.reshape(mean, (-1,)), ops.reshape(variance, (-1,))

    def get_config(self):
        return {**super().get_config(), "virtual_batch_size": self.virtual_batch_size}


def _broadcasts_to(shape, target) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` without enlarging it; a size not
    known until run time (None) is taken to fit."""
    return len(shape) <= len(target) and all(
        size in (1, None) or goal is None or size == goal
        for size, goal in zip(reversed(tuple(shape)), reversed(tuple(target)), strict=False))


@keras.saving.register_keras_serializable(package="normlab")
class AdjustedBatchNorm(BatchNorm):
    """Keras 2's ``adjustment`` argument, which Keras 3 removed, through the :meth:`adjust` hook.

    ``adjustment(shape)`` receives the (dynamic) shape of the input and returns ``(scale, bias)``,
    broadcastable to it; in training the normalized values become ``x_hat * scale + bias`` before
    gamma and beta, e.g. to add noise to the normalization. Inference is plain batch norm.
    Explained in chapter 3.

    Args:
        adjustment: the function. To save a model with this layer, make it a named function
            registered with ``keras.saving.register_keras_serializable``.
        **kwargs: as for :class:`BatchNorm`.
    """

    def __init__(self, adjustment, **kwargs):
        super().__init__(**kwargs)
        if isinstance(adjustment, dict):  # from get_config
            adjustment = keras.saving.deserialize_keras_object(adjustment)
        if not callable(adjustment):
            raise ValueError(f"adjustment must be a function of the input shape, got {adjustment!r}")
        self.adjustment = adjustment

    def adjust(self, normalized):
        pair = self.adjustment(ops.shape(normalized))
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            got = f"{type(pair).__name__} of {len(pair)}" if isinstance(pair, (tuple, list)) else repr(pair)
            raise ValueError(f"adjustment must return a (scale, bias) pair, got {got}")
        # the function may return float32 tensors (e.g. noise) for float64 statistics
        scale, bias = (ops.cast(value, normalized.dtype) for value in pair)
        for name, value in (("scale", scale), ("bias", bias)):
            if not _broadcasts_to(value.shape, normalized.shape):
                raise ValueError(f"adjustment returned a {name} of shape {tuple(value.shape)}, which does "
                                 f"not broadcast to the input's shape {tuple(normalized.shape)}")
        return normalized * scale + bias

    def get_config(self):
        return {**super().get_config(),
                "adjustment": keras.saving.serialize_keras_object(self.adjustment)}


PACKED_WIDTH = 32  # values per row at least, for the packed computation to fill vector registers


def _packing(shape) -> int:
    """Positions per packed row: a power of two that makes rows ``PACKED_WIDTH`` values wide, or
    less where it must, to divide the positions of every batch of ``shape`` (``None`` sizes aside)."""
    positions = math.prod(size or 1 for size in shape[:-1])
    packing = 1
    while packing * shape[-1] < PACKED_WIDTH and positions % (2 * packing) == 0:
        packing *= 2
    return packing


def _packed_batch_norm(x, gamma, beta, epsilon, packing):
    """Batch norm of a float32 channels-last ``x`` in training mode: ``(y, mean, biased variance)``.

    Per-channel sums over an (M, C) view of a few channels reduce along rows too short to fill a
    vector register; the same memory read as (M / k, k C) rows fills them, and the k partial sums
    of a channel are added at the end. The gradient is written out (chapter 2's equation (7)):
    ``dx = s dy + c1 (x - mu) + c0`` with per-channel ``s, c1, c0``, fewer passes over the
    activation than differentiating the forward operations takes.
    """
    channels = x.shape[-1]
    rows = tf.reshape(x, (-1, packing * channels))
    count = tf.cast(tf.shape(rows)[0] * packing, x.dtype)

    def per_channel(sums):
        return sums if packing == 1 else tf.reduce_sum(tf.reshape(sums, (packing, channels)), axis=0)

    def tiled(values):
        return values if packing == 1 else tf.tile(values, [packing])

    mean = per_channel(tf.reduce_sum(rows, axis=0)) / count
    centered = rows - tiled(mean)
    variance = per_channel(tf.reduce_sum(tf.square(centered), axis=0)) / count
    inv_std = tf.math.rsqrt(variance + epsilon)

    @tf.custom_gradient
    def normalize(centered, gamma, beta):
        scale = gamma * inv_std

        def gradient(dy):
            dbeta = per_channel(tf.reduce_sum(dy, axis=0))
            dgamma = inv_std * per_channel(tf.reduce_sum(dy * centered, axis=0))
            c1 = -scale * inv_std * dgamma / count
            c0 = -scale * dbeta / count
            return dy * tiled(scale) + centered * tiled(c1) + tiled(c0), dgamma, dbeta

        return centered * tiled(scale) + tiled(beta), gradient

    return tf.reshape(normalize(centered, gamma, beta), tf.shape(x)), mean, variance


@keras.saving.register_keras_serializable(package="normlab")
class FusedBatchNorm(BatchNorm):
    """``keras.layers.BatchNormalization`` for channels-last conv (N, H, W, C) and dense (N, C)
    activations, trained with one forward and one backward computation per step.

    Keras 3 writes batch norm with ``keras.ops`` (it runs on every backend): several separate
    operations, each a pass over the activation, forward and backward. This layer does each
    direction in one computation, with whichever of two is faster for the input: TensorFlow's fused
    kernel (``fused_batch_norm``) on a GPU and where the channels fill the CPU's vector registers,
    else :func:`_packed_batch_norm`, whose rows of several positions fill them (oneDNN's kernel
    vectorizes across channels, and six of them leave most of a register empty). Outputs, gradients
    and moving statistics match Keras's layer; the fused kernel reports the batch variance with
    Bessel's correction, ``m / (m - 1)``, which is undone before the moving average, because Keras
    averages the biased variance. Inference and frozen layers use :class:`BatchNorm`'s path.
    TensorFlow backend only.

    Dtypes as for :class:`BatchNorm`. The fused kernel takes float16, bfloat16 and float32 inputs
    with float32 weights and statistics (it accumulates in float32), so mixed-precision inputs go to
    it uncast; float64 it does not take at all, so float64 training uses :class:`BatchNorm`'s
    non-fused path rather than losing precision in a cast.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(axis=axis, **kwargs)
        if self.epsilon < 1.001e-5:
            raise ValueError(f"the fused kernel needs epsilon >= 1.001e-5, got {self.epsilon}")

    def build(self, input_shape):
        if (len(input_shape) not in (2, 4)
                or _feature_axis(len(input_shape), self.axis) != len(input_shape) - 1):
            raise ValueError("FusedBatchNorm takes channels-last inputs, (N, H, W, C) or (N, C), with "
                             f"axis=-1, got shape {input_shape} and axis {self.axis}")
        super().build(input_shape)

    def call(self, inputs, training=False):
        if not (training and self.trainable):
            return super().call(inputs, training=False)
        dtype = _statistics_dtype(inputs)
        if dtype == "float64":
            return super().call(inputs, training=True)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, dtype) if self.scale else tf.ones(channels, dtype)
        beta = tf.cast(self.beta, dtype) if self.center else tf.zeros(channels, dtype)
        if self._fused_kernel(inputs):
            y, mean, variance = self._fused(inputs, gamma, beta, dtype)
        else:
            y, mean, variance = _packed_batch_norm(tf.cast(inputs, dtype), gamma, beta, self.epsilon,
                                                   _packing(inputs.shape))
        self._update_moving_statistics(tf.stop_gradient(mean), tf.stop_gradient(variance))
        return tf.cast(y, self.compute_dtype)

    @staticmethod
    def _fused_kernel(inputs) -> bool:
        """Whether TensorFlow's kernel is the faster computation: on a GPU (cuDNN), and on a CPU
        where the channels fill its vector registers (multiples of 8 float32 values) and the
        activation is large enough to repay the kernel's fixed cost (a conv map, or 256 features)."""
        channels = inputs.shape[-1]
        return bool(tf.config.list_logical_devices("GPU")) or (
            channels % 8 == 0 and (len(inputs.shape) == 4 or channels >= 256))

    def _fused(self, inputs, gamma, beta, dtype):
        x = inputs if inputs.dtype in (tf.float16, tf.bfloat16) else tf.cast(inputs, dtype)
        four_d = tf.reshape(x, (-1, 1, 1, x.shape[-1])) if len(x.shape) == 2 else x
        y, mean, corrected = tf.compat.v1.nn.fused_batch_norm(
            four_d, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        m = tf.cast(tf.size(x) // x.shape[-1], dtype)
        biased = corrected * (m - 1.0) / tf.maximum(m, 1.0)
        return tf.reshape(y, tf.shape(x)), mean, biased


@keras.saving.register_keras_serializable(package="normlab")
class NoisyBatchNorm(keras.layers.BatchNormalization):
    """Keras's batch norm followed, in training, by noise that moves its output distribution at
    every step (Santurkar et al., 2018, section 2.1): the opposite of a stable input distribution
    for the next layer. Explained in chapter 7.

    Each training call draws, for the layer, ``mu ~ U(-mean_range, mean_range)`` and
    ``sigma ~ U(1, 1 + scale_range)``; then, per element, ``m ~ U(mu - jitter, mu + jitter)`` and
    ``s ~ N(sigma, jitter)``, and returns ``s * y + m`` for the batch-normalized ``y``. Inference
    is plain batch norm. Other arguments are those of ``keras.layers.BatchNormalization``.

    Args:
        mean_range: half-width of the uniform distribution of the step's mean shift.
        scale_range: width of the uniform distribution of the step's scale above 1.
        jitter: spread of the per-element shift and scale around the step's values.
        seed: of the noise; None draws it from Keras's global seed (``keras.utils.set_random_seed``).
    """

    def __init__(self, mean_range=0.5, scale_range=0.25, jitter=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        spreads = {name: real_argument(name, value) for name, value in
                   (("mean_range", mean_range), ("scale_range", scale_range), ("jitter", jitter))}
        for name, value in spreads.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.mean_range, self.scale_range, self.jitter = spreads.values()
        self.seed = None if seed is None else int_argument("seed", seed)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None, mask=None):
        y = super().call(inputs, training=training, mask=mask)
        if not (training and self.trainable):
            return y
        mu = keras.random.uniform((), -self.mean_range, self.mean_range, seed=self.seed_generator)
        sigma = keras.random.uniform((), 1.0, 1.0 + self.scale_range, seed=self.seed_generator)
        shape = ops.shape(y)
        m = mu + keras.random.uniform(shape, -self.jitter, self.jitter, seed=self.seed_generator)
        s = sigma + self.jitter * keras.random.normal(shape, seed=self.seed_generator)
        return ops.cast(s, y.dtype) * y + ops.cast(m, y.dtype)

    def get_config(self):
        return {**super().get_config(), "mean_range": self.mean_range,
                "scale_range": self.scale_range, "jitter": self.jitter, "seed": self.seed}


def _nested_layers(layer) -> list:
    """``layer`` and every layer nested in it.

    Only models list their layers (``layers``); the layers that a custom layer holds in attributes
    (or in lists and dicts of them) Keras tracks without listing them publicly, so this walks
    Keras's own flattening of the tracked layers, the one that ``trainable`` and ``compile`` use.
    """
    if hasattr(layer, "_flatten_layers"):
        return list(layer._flatten_layers())
    # not a Keras 3 layer: at least what ``layers`` lists
    return [layer, *(inner for child in getattr(layer, "layers", []) for inner in _nested_layers(child))]


def _batch_norm_layers(layer):
    """``layer`` and every layer nested in it, once each, that keeps moving batch statistics."""
    found = {id(child): child for child in _nested_layers(layer)
             if isinstance(child, (keras.layers.BatchNormalization, BatchNorm))}
    return list(found.values())


@contextlib.contextmanager
def dropout_off(model):
    """Dropout layers, nested ones too, pass their inputs through unchanged, also in training mode:
    for training-mode passes that must see the activations that inference sees."""
    dropouts = list({id(layer): layer for layer in _nested_layers(model)
                     if isinstance(layer, keras.layers.Dropout)}.values())
    rates = [layer.rate for layer in dropouts]
    try:
        for layer in dropouts:
            layer.rate = 0.0
        yield
    finally:
        for layer, rate in zip(dropouts, rates, strict=True):
            layer.rate = rate


def precise_batch_norm(model, batches, num_batches=None) -> int:
    """Recompute every trainable batch-norm layer's moving statistics with frozen weights.

    PreciseBN (Wu & Johnson, 2021): instead of the exponential moving average collected while the
    weights were still changing, run ``num_batches`` batches (default: all of ``batches``) through
    the model in training mode with no weight update, and set each layer's moving mean and
    variance to the *equal-weight* average of the batch means and (biased) variances. ``batches``
    yields inputs or ``(inputs, labels)`` pairs; fewer than ``num_batches`` of them is an error,
    not a smaller estimate. Returns the number of batches used. Explained in chapter 4.

    Layers nested in custom layers count too. Dropout is off during the passes: in training mode
    it would change the variance that the layers after it see, which inference never sees. Each
    batch runs with momentum 0, so that a layer's moving statistics then hold that batch's, and
    every batch starts from the layers' state as it was (their non-trainable weights are put back
    after each), so no batch sees another's statistics. The averages go where inference reads
    them, ``moving_mean`` and ``moving_variance``. ``BatchNormalization(renorm=True)`` derives its
    moving variance from a ``moving_stddev`` whose update averages standard deviations, not
    variances; it is set to ``sqrt(variance + epsilon)`` to agree, and the training-only
    ``renorm_mean`` and ``renorm_stddev`` are left as they were.
    """
    if num_batches is not None:
        num_batches = int_argument("num_batches", num_batches)
        if num_batches < 1:
            raise ValueError(f"num_batches must be at least 1, got {num_batches}")
    if batches is None or isinstance(batches, (str, bytes, np.ndarray)) or tf.is_tensor(batches) \
            or not hasattr(batches, "__iter__"):
        raise ValueError("batches must be an iterable of batches (a list of arrays, a generator, a "
                         f"tf.data.Dataset), got {type(batches).__name__}: split an array into batches")
    layers = [layer for layer in _batch_norm_layers(model) if layer.trainable]
    if not layers:
        raise ValueError("the model has no trainable batch-norm layer to recompute")
    saved = []

    def restore():
        for layer, (momentum, values) in zip(layers, saved):  # noqa: B905 (none saved before a batch)
            layer.momentum = momentum
            for weight, value in zip(layer.non_trainable_weights, values, strict=True):
                weight.assign(value)

    sums = [[0.0, 0.0] for _ in layers]
    used = 0
    try:
        with dropout_off(model):
            for batch in itertools.islice(batches, num_batches):
                used += 1
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                if not saved:  # the state to put back, once every layer has its weights
                    if not all(layer.built for layer in layers):
                        model(inputs, training=False)  # builds them; inference changes no state
                    saved = [(layer.momentum, [w.numpy() for w in layer.non_trainable_weights])
                             for layer in layers]
                for layer in layers:
                    layer.momentum = 0.0
                model(inputs, training=True)
                for layer, total in zip(layers, sums, strict=True):
                    total[0] = total[0] + np.asarray(layer.moving_mean, np.float64)
                    total[1] = total[1] + np.asarray(layer.moving_variance, np.float64)
                restore()
    finally:
        restore()
    if used == 0:
        raise ValueError("batches was empty")
    if num_batches is not None and used < num_batches:
        raise ValueError(f"asked for num_batches={num_batches} but batches gave only {used}; ask for "
                         f"at most {used}, or give more batches")
    for layer, (mean_sum, variance_sum) in zip(layers, sums, strict=True):
        mean, variance = mean_sum / used, variance_sum / used
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
        if getattr(layer, "renorm", False):
            stddev = np.sqrt(variance + layer.epsilon)
            layer.moving_stddev.assign(stddev.astype(layer.moving_stddev.dtype))
    return used


@keras.saving.register_keras_serializable(package="normlab")
class BatchRenorm(BatchNorm):
    """Batch renormalization (Ioffe, 2017) with the paper's schedule for its clipping.

    In training, ``x_hat = (x - mu_B) / sigma_B * r + d`` with ``r = sigma_B / sigma`` and
    ``d = (mu_B - mu) / sigma``, where ``mu`` and ``sigma = sqrt(moving_variance + epsilon)`` are the
    moving statistics; ``r`` is clipped to ``[1 / r_max, r_max]``, ``d`` to ``[-d_max, d_max]``, and
    both are constants for the gradient. With ``r = 1, d = 0`` this is batch norm; unclipped, the
    output is what inference computes, so training and inference agree even when batches are small
    or not i.i.d. Keras's ``renorm=True`` clips with fixed bounds; the paper trains as batch norm
    (``r_max = 1, d_max = 0``) while the moving statistics settle, then relaxes the bounds
    linearly. The layer counts its own training steps, so the schedule runs alike in ``fit`` and in
    a custom loop, and after the warm-up it counts how often the bounds bite
    (:meth:`clipped_fractions`): a bound that never clips leaves renorm unclipped, one that always
    clips leaves it close to batch norm. Explained in chapter 8. Dtypes as for :class:`BatchNorm`.

    Args:
        rmax, dmax: the final bounds (the paper's 3 and 5).
        warmup_steps: training steps with ``r_max = 1, d_max = 0`` (plain batch norm).
        rmax_steps, dmax_steps: the step at which each bound reaches its final value, rising
            linearly from the end of the warm-up (the paper: 5,000, 40,000 and 25,000 steps).
        **kwargs: as for :class:`BatchNorm`.
    """

    def __init__(self, rmax=3.0, dmax=5.0, warmup_steps=0, rmax_steps=0, dmax_steps=0, **kwargs):
        super().__init__(**kwargs)
        self.rmax, self.dmax = real_argument("rmax", rmax), real_argument("dmax", dmax)
        if self.rmax < 1.0:
            raise ValueError(f"rmax must be >= 1, got {rmax}")
        if self.dmax < 0.0:
            raise ValueError(f"dmax must be >= 0, got {dmax}")
        steps = {name: int_argument(name, value) for name, value in
                 (("warmup_steps", warmup_steps), ("rmax_steps", rmax_steps), ("dmax_steps", dmax_steps))}
        for name, value in steps.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.warmup_steps, self.rmax_steps, self.dmax_steps = steps.values()

    def build(self, input_shape):
        super().build(input_shape)
        # float32 under every policy but float64, and not autocast: float16 counts stop at 2048
        self.steps = self.add_weight(shape=(), initializer="zeros", trainable=False, name="steps",
                                     autocast=False)
        # after the warm-up: the sums over steps of the share of channels whose r, d was clipped
        self.clipped = self.add_weight(shape=(2,), initializer="zeros", trainable=False,
                                       name="clipped", autocast=False)

    def clipping(self):
        """``(r_max, d_max)`` at the current training step, in the dtype of the step counter."""
        def relaxed(final, until):
            span = until - self.warmup_steps
            if span <= 0:  # no ramp: the final bound from the end of the warm-up on
                return ops.cast(self.steps >= self.warmup_steps, self.steps.dtype) * final
            return ops.clip((self.steps - self.warmup_steps) / span, 0.0, 1.0) * final

        return 1.0 + relaxed(self.rmax - 1.0, self.rmax_steps), relaxed(self.dmax, self.dmax_steps)

    def call(self, inputs, training=False):
        if not (training and self.trainable):
            return super().call(inputs, training=False)
        x = ops.cast(inputs, _statistics_dtype(inputs))
        mean, variance = ops.moments(x, axes=self._axes)
        moving_mean, moving_variance = (ops.cast(v, x.dtype) for v in (self.moving_mean,
                                                                       self.moving_variance))
        batch_std = ops.sqrt(variance + self.epsilon)
        moving_std = ops.sqrt(moving_variance + self.epsilon)
        rmax, dmax = (ops.cast(bound, x.dtype) for bound in self.clipping())
        r_free, d_free = batch_std / moving_std, (mean - moving_mean) / moving_std
        r = ops.stop_gradient(ops.clip(r_free, 1.0 / rmax, rmax))
        d = ops.stop_gradient(ops.clip(d_free, -dmax, dmax))
        self._count_clipped(r != r_free, d != d_free)
        self._update_moving_statistics(mean, variance)
        self.steps.assign_add(1.0)
        shape = self._broadcast
        y = (x - ops.reshape(mean, shape)) / ops.reshape(batch_std, shape)
        y = y * ops.reshape(r, shape) + ops.reshape(d, shape)
        return ops.cast(self._scale_and_shift(y, shape), self.compute_dtype)

    def _count_clipped(self, r_clipped, d_clipped):
        shares = ops.stack([ops.mean(ops.cast(c, self.clipped.dtype)) for c in (r_clipped, d_clipped)])
        past_warmup = ops.cast(self.steps >= self.warmup_steps, self.clipped.dtype)
        self.clipped.assign_add(shares * past_warmup)

    def clipped_fractions(self) -> tuple[float, float]:
        """The share of (step, channel) pairs after the warm-up in which r, and d, were clipped."""
        steps = max(float(self.steps.numpy()) - self.warmup_steps, 0.0)
        if not steps:
            return (float("nan"), float("nan"))
        r, d = (float(v) / steps for v in self.clipped.numpy())
        return (r, d)

    def get_config(self):
        return {**super().get_config(), "rmax": self.rmax, "dmax": self.dmax,
                "warmup_steps": self.warmup_steps, "rmax_steps": self.rmax_steps,
                "dmax_steps": self.dmax_steps}


def renorm_clipping(model) -> dict[str, list[float]]:
    """How often each :class:`BatchRenorm` layer of a trained model clipped r and d after its
    warm-up (:meth:`BatchRenorm.clipped_fractions`), one value per layer: what
    :func:`normlab.train.fit_seeds` records with ``after=renorm_clipping`` (chapter 8)."""
    fractions = [layer.clipped_fractions() for layer in _nested_layers(model)
                 if isinstance(layer, BatchRenorm)]
    return {"r_clipped": [r for r, _ in fractions], "d_clipped": [d for _, d in fractions]}


@keras.saving.register_keras_serializable(package="normlab")
class WeightStandardizedConv2D(keras.layers.Conv2D):
    """A ``Conv2D`` whose kernel is standardized per output channel before every use (Qiao et al.,
    2019): ``W_hat = (W - mean(W)) / sqrt(var(W) + epsilon)`` over its height, width and input
    channels. It normalizes the weights rather than the activations, so it needs no batch
    statistics; with group norm it matches batch norm at batch sizes where batch norm fails.
    Explained in chapter 8.

    Args:
        epsilon: added to the kernel's variance.
        **kwargs: as for ``keras.layers.Conv2D``.
    """

    def __init__(self, *args, epsilon=1e-5, **kwargs):
        super().__init__(*args, **kwargs)
        self.epsilon = real_argument("epsilon", epsilon)
        if self.epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")

    def convolution_op(self, inputs, kernel):
        mean, variance = ops.moments(kernel, axes=(0, 1, 2), keepdims=True)
        return super().convolution_op(inputs, (kernel - mean) * ops.rsqrt(variance + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
