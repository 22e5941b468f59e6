"""Porting PyTorch's batch norm and convolutions to Keras, with PyTorch's arithmetic in NumPy.

Explained in chapter 9. PyTorch and Keras store the same layers differently: a convolution's
kernel is (out, in, height, width) in PyTorch and (height, width, in, out) in Keras; a batch-norm
layer's ``momentum`` weighs the new batch in PyTorch and the old average in Keras; PyTorch's
default epsilon is 1e-5 against Keras's 1e-3; and Keras's ``set_weights`` wants gamma, beta, the
moving mean and the moving variance in that order, each only where it exists. The functions here
take a PyTorch ``state_dict`` (its tensors as NumPy arrays, ``tensor.numpy()``) and the layer's
constructor arguments, and return a Keras layer that computes what the PyTorch layer computes in
``eval()`` mode. :func:`torch_batch_norm` and :func:`torch_conv2d` are PyTorch's computations
written out in NumPy, the reference the tests and the chapter check the ports against.
"""

from __future__ import annotations

import numpy as np

from normlab.runtime import import_tensorflow

tf, keras = import_tensorflow()


def _array(state_dict: dict, key: str) -> np.ndarray:
    if key not in state_dict:
        raise ValueError(f"the state_dict has no {key!r}; it has {', '.join(sorted(state_dict))}")
    return np.asarray(state_dict[key])


def batch_norm_from_torch(state_dict: dict, *, eps: float = 1e-5, momentum: float | None = 0.1,
                          affine: bool = True, track_running_stats: bool = True, rank: int = 4,
                          channels_first: bool = False, **layer_arguments):
    """A built ``keras.layers.BatchNormalization`` holding a PyTorch ``BatchNorm1d/2d/3d``'s state.

    ``eps``, ``momentum``, ``affine`` and ``track_running_stats`` are the PyTorch layer's
    arguments. ``momentum=p`` becomes Keras's ``1 - p``; ``momentum=None`` (PyTorch's cumulative
    average, in which batch n + 1 weighs 1 / (n + 1)) becomes the weight PyTorch would give the
    next batch, ``1 - 1 / (num_batches_tracked + 1)``, which only the next update shares with it.
    ``affine=False`` is ``center=False, scale=False``. ``rank`` is that of the inputs (4 for
    ``BatchNorm2d``, 2 or 3 for ``BatchNorm1d``), which a Keras layer fixes when it is built;
    ``channels_first=True`` (PyTorch's layout, kept in Keras) normalizes axis 1. A layer without
    running statistics (``track_running_stats=False``) normalizes with the batch's statistics in
    ``eval()`` too, which a Keras layer at inference cannot do, so it is refused.
    """
    if not track_running_stats:
        raise ValueError(
            "track_running_stats=False: PyTorch normalizes every batch with its own statistics, in "
            "eval() too, and keeps no running statistics to port; Keras's BatchNormalization at "
            "inference uses moving statistics. Call the Keras layer with training=True (and "
            "momentum=1.0, so that it keeps nothing), or use a per-example normalizer.")
    mean, variance = _array(state_dict, "running_mean"), _array(state_dict, "running_var")
    if momentum is None:
        momentum = 1.0 / (float(_array(state_dict, "num_batches_tracked")) + 1.0)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be PyTorch's weight of the new batch, in [0, 1], got {momentum}")
    weights = [_array(state_dict, "weight"), _array(state_dict, "bias")] if affine else []
    layer = keras.layers.BatchNormalization(
        axis=1 if channels_first else -1, momentum=1.0 - momentum, epsilon=eps, center=affine,
        scale=affine, **layer_arguments)
    shape = [None] * rank
    shape[1 if channels_first else -1] = len(mean)
    layer.build(tuple(shape))
    layer.set_weights([*weights, mean, variance])  # gamma, beta, moving mean, moving variance
    return layer


def conv2d_from_torch(state_dict: dict, *, stride=1, padding=0, dilation=1, groups: int = 1,
                      channels_first: bool = False, **layer_arguments):
    """A built ``keras.layers.Conv2D`` holding a PyTorch ``Conv2d``'s weight and bias.

    The kernel goes from PyTorch's (out, in / groups, height, width) to Keras's (height, width,
    in / groups, out). PyTorch's ``padding`` of 0 is Keras's ``"valid"``; with stride 1, a padding
    of (size - 1) / 2 on each side of an odd kernel is ``"same"``. Other paddings have no Keras
    ``padding`` argument: put a ``ZeroPadding2D`` before a ``"valid"`` convolution.
    """
    kernel = _array(state_dict, "weight")
    if kernel.ndim != 4:
        raise ValueError(f"a Conv2d weight has 4 axes (out, in, height, width), got shape {kernel.shape}")
    size = kernel.shape[2:]
    pair = lambda value: tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # noqa: E731
    stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
    if padding == (0, 0):
        keras_padding = "valid"
    elif stride == (1, 1) and all(k % 2 and p == d * (k - 1) // 2
                                  for k, p, d in zip(size, padding, dilation, strict=True)):
        keras_padding = "same"
    else:
        raise ValueError(f"padding {padding} with kernel {size}, stride {stride}: Keras's Conv2D has no "
                         "such padding; add keras.layers.ZeroPadding2D and port with padding=0")
    bias = state_dict.get("bias")
    layer = keras.layers.Conv2D(
        kernel.shape[0], size, strides=stride, padding=keras_padding, dilation_rate=dilation,
        groups=groups, use_bias=bias is not None,
        data_format="channels_first" if channels_first else "channels_last", **layer_arguments)
    channels = kernel.shape[1] * groups
    layer.build((None, channels, None, None) if channels_first else (None, None, None, channels))
    layer.set_weights([kernel.transpose(2, 3, 1, 0), *([np.asarray(bias)] if bias is not None else [])])
    return layer


def torch_batch_norm(x, state_dict: dict, *, training: bool, momentum: float = 0.1,
                     eps: float = 1e-5) -> tuple[np.ndarray, dict]:
    """PyTorch's ``batch_norm`` in NumPy, channels first (N, C, ...): the output and the state
    after the call. In training it normalizes with the batch's biased variance and averages the
    *unbiased* one, m / (m - 1) times larger for m values per channel, into ``running_var``."""
    x = np.asarray(x, np.float64)
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    state = {key: np.asarray(value, np.float64) for key, value in state_dict.items()}
    if training:
        m = x.size // x.shape[1]
        mean, variance = x.mean(axis=axes), x.var(axis=axes)
        state["running_mean"] = (1 - momentum) * state["running_mean"] + momentum * mean
        unbiased = variance * m / (m - 1)
        state["running_var"] = (1 - momentum) * state["running_var"] + momentum * unbiased
    else:
        mean, variance = state["running_mean"], state["running_var"]
    y = (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + eps)
    if "weight" in state:
        y = y * state["weight"].reshape(shape) + state["bias"].reshape(shape)
    return y, state


def torch_conv2d(x, state_dict: dict, *, padding: int = 0) -> np.ndarray:
    """PyTorch's ``conv2d`` in NumPy (stride 1, no groups): NCHW input, OIHW kernel, a
    cross-correlation over the zero-padded input."""
    weight = np.asarray(state_dict["weight"], np.float64)
    x = np.pad(np.asarray(x, np.float64), [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    height, width = weight.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(x, (height, width), axis=(2, 3))
    y = np.einsum("nihwkl,oikl->nohw", windows, weight)
    bias = state_dict.get("bias")
    return y if bias is None else y + np.asarray(bias, np.float64)[None, :, None, None]
