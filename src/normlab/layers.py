"""Batch normalization written out: a NumPy reference and a from-scratch Keras 3 layer.

Explained in chapter 2 ("Batch-norm internals"): the NumPy functions are equations (1)-(4)
and their backward pass; :class:`BatchNorm` is the same algorithm as a Keras layer, shown there
to match ``keras.layers.BatchNormalization`` in training, inference and moving statistics.
"""

from __future__ import annotations

import numpy as np

from normlab.runtime import import_tensorflow

_, keras = import_tensorflow()
ops = keras.ops


def _feature_axis(ndim: int, axis: int) -> int:
    """Validate ``axis`` for a rank-``ndim`` input and return it as a non-negative index."""
    if ndim < 2:
        raise ValueError(f"batch norm needs an input of rank >= 2 (batch, features...), got rank {ndim}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an int, got {axis!r}")
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


def batch_norm_backward(dy, cache):
    """Gradients ``(dx, dgamma, dbeta)`` of training-mode batch norm, eq. (6) of chapter 2.

    With m values per feature: dx = gamma/(m*sigma) * (m*dy - sum(dy) - x_hat*sum(dy*x_hat)).
    """
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
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"axis must be an int, got {axis!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
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
        self.gamma = (self.add_weight(shape=(size,), initializer=self.gamma_initializer, name="gamma")
                      if self.scale else None)
        self.beta = (self.add_weight(shape=(size,), initializer=self.beta_initializer, name="beta")
                     if self.center else None)
        self.moving_mean = self.add_weight(shape=(size,), initializer=self.moving_mean_initializer,
                                           trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape=(size,),
                                               initializer=self.moving_variance_initializer,
                                               trainable=False, name="moving_variance")

    def call(self, inputs, training=False):
        x = ops.cast(inputs, "float32")
        if training and self.trainable:
            mean, variance = ops.moments(x, axes=self._axes)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        inv_std = ops.rsqrt(ops.reshape(variance, self._broadcast) + self.epsilon)
        y = (x - ops.reshape(mean, self._broadcast)) * inv_std
        if self.scale:
            y = y * ops.reshape(self.gamma, self._broadcast)
        if self.center:
            y = y + ops.reshape(self.beta, self._broadcast)
        return ops.cast(y, self.compute_dtype)

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
