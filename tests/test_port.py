"""The PyTorch ports of normlab.port against PyTorch's arithmetic written out in NumPy."""

import numpy as np
import pytest

from normlab import port, runtime

tf, keras = runtime.import_tensorflow()


def batch_norm_state(channels, rng, affine=True):
    state = {"running_mean": rng.normal(size=channels), "running_var": rng.uniform(1e-4, 3.0, channels),
             "num_batches_tracked": np.array(9)}
    if affine:
        state |= {"weight": rng.uniform(0.5, 2.0, channels), "bias": rng.normal(size=channels)}
    return state


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("channels_first", [True, False])
def test_a_ported_batch_norm_computes_what_pytorch_computes_in_eval_mode(affine, channels_first):
    rng = np.random.default_rng(0)
    state = batch_norm_state(5, rng, affine)
    x = rng.normal(1.0, 2.0, size=(4, 5, 3, 3))  # NCHW, as PyTorch holds it
    expected, _ = port.torch_batch_norm(x, state, training=False, eps=1e-5)
    layer = port.batch_norm_from_torch(state, eps=1e-5, affine=affine, channels_first=channels_first)
    inputs = x if channels_first else x.transpose(0, 2, 3, 1)
    got = np.asarray(layer(inputs.astype("float32"), training=False), np.float64)
    got = got if channels_first else got.transpose(0, 3, 1, 2)
    # float32 of values up to about 100 (x / sqrt(1e-4)): a few eps relative
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert layer.epsilon == 1e-5 and layer.center == layer.scale == affine


def test_a_ported_batch_norm_trains_with_pytorchs_momentum():
    rng = np.random.default_rng(1)
    state = batch_norm_state(3, rng)
    layer = port.batch_norm_from_torch(state, momentum=0.1, rank=2)
    x = rng.normal(size=(64, 3))
    layer(x.astype("float32"), training=True)
    _, after = port.torch_batch_norm(x, state, training=True, momentum=0.1)
    np.testing.assert_allclose(layer.moving_mean.numpy(), after["running_mean"], rtol=1e-5, atol=1e-6)
    # PyTorch averages the unbiased variance: its update is m / (m - 1) larger
    keras_update = layer.moving_variance.numpy() - 0.9 * state["running_var"]
    torch_update = after["running_var"] - 0.9 * state["running_var"]
    np.testing.assert_allclose(torch_update / keras_update, 64 / 63, rtol=1e-4)


def test_a_cumulative_average_ports_as_the_weight_of_the_next_batch():
    state = batch_norm_state(2, np.random.default_rng(2))  # 9 batches tracked
    assert port.batch_norm_from_torch(state, momentum=None).momentum == pytest.approx(0.9)


def test_a_batch_norm_without_running_statistics_or_a_weight_is_refused_by_name():
    state = batch_norm_state(2, np.random.default_rng(3))
    with pytest.raises(ValueError, match="track_running_stats=False"):
        port.batch_norm_from_torch(state, track_running_stats=False)
    with pytest.raises(ValueError, match="no 'weight'"):
        port.batch_norm_from_torch({k: v for k, v in state.items() if k != "weight"})
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        port.batch_norm_from_torch(state, momentum=0.9 + 1)


@pytest.mark.parametrize("padding, bias", [(0, True), (1, True), (1, False)])
@pytest.mark.parametrize("channels_first", [False, True])
def test_a_ported_conv_computes_what_pytorch_computes(padding, bias, channels_first):
    rng = np.random.default_rng(4)
    state = {"weight": rng.normal(size=(6, 3, 3, 3))}  # OIHW
    if bias:
        state["bias"] = rng.normal(size=6)
    x = rng.normal(size=(2, 3, 7, 7))
    expected = port.torch_conv2d(x, state, padding=padding)
    layer = port.conv2d_from_torch(state, padding=padding, channels_first=channels_first)
    inputs = x if channels_first else x.transpose(0, 2, 3, 1)
    got = np.asarray(layer(inputs.astype("float32")), np.float64)
    got = got if channels_first else got.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)  # 27 float32 terms of size 1


def test_a_conv_padding_keras_has_no_argument_for_is_refused():
    state = {"weight": np.zeros((2, 1, 3, 3))}
    with pytest.raises(ValueError, match="ZeroPadding2D"):
        port.conv2d_from_torch(state, padding=2)
    with pytest.raises(ValueError, match="4 axes"):
        port.conv2d_from_torch({"weight": np.zeros((2, 3))})


def test_the_numpy_reference_is_pytorchs_training_step():
    x = np.arange(8.0).reshape(4, 2)  # two channels of m = 4 values
    state = {"running_mean": np.zeros(2), "running_var": np.ones(2)}
    y, after = port.torch_batch_norm(x, state, training=True, momentum=0.5, eps=0.0)
    np.testing.assert_allclose(after["running_mean"], [1.5, 2.0])  # 0.5 * (0, 0) + 0.5 * (3, 4)
    np.testing.assert_allclose(after["running_var"], 0.5 + 0.5 * 5.0 * 4 / 3)  # biased var 5
    np.testing.assert_allclose(y[:, 0], (np.array([0, 2, 4, 6]) - 3) / np.sqrt(5))
