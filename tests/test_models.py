import numpy as np
import pytest

from normlab import layers, models, runtime

tf, keras = runtime.import_tensorflow()


def layer_names(model):
    return [layer.name for layer in model.layers]


def test_plain_lenet5_has_the_articles_shape_and_returns_logits():
    model = models.lenet5((32, 32, 3))
    assert layer_names(model) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
                                  "fc1", "relu3", "fc2", "relu4", "logits"]
    # conv 5x5x3x6 + 6, conv 5x5x6x16 + 16, dense 8*8*16 -> 120 -> 84 -> 10 (padding "same")
    assert model.count_params() == 456 + 2416 + (1024 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert model.output_shape == (None, 10)
    assert model.layers[-1].activation is keras.activations.linear


@pytest.mark.parametrize("placement, expected", [
    ("before", ["conv1", "norm1", "relu1"]), ("after", ["conv1", "relu1", "norm1"])])
def test_norm_placement_relative_to_relu(placement, expected):
    model = models.lenet5((28, 28, 1), norm="batch", placement=placement)
    assert layer_names(model)[:3] == expected


@pytest.mark.parametrize("norm, conv_type, dense_type", [
    ("batch", keras.layers.BatchNormalization, keras.layers.BatchNormalization),
    ("batch_fused", layers.FusedBatchNorm, layers.FusedBatchNorm),
    ("layer", keras.layers.LayerNormalization, keras.layers.LayerNormalization),
    ("group", keras.layers.GroupNormalization, keras.layers.GroupNormalization)])
def test_every_conv_and_hidden_dense_layer_gets_the_chosen_norm(norm, conv_type, dense_type):
    model = models.lenet5((28, 28, 1), norm=norm)
    found = {name: type(model.get_layer(name)) for name in ("norm1", "norm2", "norm3", "norm4")}
    assert found == {"norm1": conv_type, "norm2": conv_type, "norm3": dense_type, "norm4": dense_type}
    assert model(np.zeros((2, 28, 28, 1), "float32"), training=True).shape == (2, 10)


def test_layer_norm_normalizes_each_example_over_all_its_features():
    layer = models.norm_layer("layer", 4, "ln")
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 4, 4, 3)).astype("float32")
    y = np.asarray(layer(x))
    np.testing.assert_allclose(y.reshape(2, -1).mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.reshape(2, -1).std(axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("dropout_at, expected",
                         [("hidden", ["dropout1", "dropout2"]), ("head", ["dropout2"])])
def test_dropout_placement(dropout_at, expected):
    model = models.lenet5((28, 28, 1), norm="batch", dropout=0.5, dropout_at=dropout_at)
    names = layer_names(model)
    assert [n for n in names if n.startswith("dropout")] == expected
    assert names[-2:] == ["dropout2", "logits"]
    assert names.index("dropout2") == names.index("relu4") + 1


def test_input_normalization_comes_first():
    normalizer = keras.layers.Normalization(mean=127.5, variance=127.5**2, name="input_normalization")
    model = models.lenet5((28, 28, 1), input_normalization=normalizer)
    assert layer_names(model)[0] == "input_normalization"


def test_no_dropout_layers_by_default_and_no_norm_layers_for_none():
    names = layer_names(models.lenet5((28, 28, 1)))
    assert not any(n.startswith(("dropout", "norm")) for n in names)


def test_the_model_survives_a_keras_file_round_trip(tmp_path):
    model = models.lenet5((28, 28, 1), norm="batch_fused", dropout=0.2)
    x = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype("float32")
    path = tmp_path / "lenet5.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_small_cnn_with_batch_norm_drops_the_conv_bias_and_takes_the_momentum():
    plain = models.small_cnn((28, 28, 1))
    assert layer_names(plain) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
                                  "logits"]
    # conv 3x3x1x16 + 16 ('valid': 26 -> 13), conv 3x3x16x32 + 32 (11 -> 5), dense 5*5*32 -> 10
    assert plain.count_params() == 160 + 4640 + (800 * 10 + 10)
    normed = models.small_cnn((28, 28, 1), norm="batch", momentum=0.9)
    assert layer_names(normed)[:3] == ["conv1", "norm1", "relu1"]
    assert normed.get_layer("conv1").bias is None and normed.get_layer("norm2").momentum == 0.9
    assert models.returns_logits(normed)


@pytest.mark.parametrize("kwargs, message", [
    ({"norm": "instance"}, "unknown norm 'instance'"),
    ({"placement": "middle"}, "placement must be one of before, after"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"dropout_at": "everywhere"}, "dropout_at must be one of hidden, head")])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.lenet5((28, 28, 1), **kwargs)


@pytest.mark.parametrize("depth", [8, 20])
def test_resnet_has_depth_weight_layers_and_the_papers_size(depth):
    plain = models.resnet((32, 32, 3), depth=depth, shortcuts=False)
    residual = models.resnet((32, 32, 3), depth=depth)
    convs = [layer for layer in residual.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) + 1 == depth and [c.filters for c in convs][-1] == 64
    adds = [layer for layer in residual.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 3 * (depth - 2) // 6 and not any(
        isinstance(layer, keras.layers.Add) for layer in plain.layers)
    assert plain.count_params() == residual.count_params()  # option A shortcuts have no weights
    assert residual.output_shape == (None, 10) and plain.name == f"plain{depth}"
    if depth == 20:  # He et al., Table 6: 0.27M parameters
        assert round(residual.count_params() / 1e6, 2) == 0.27


@pytest.mark.parametrize("side", [8, 7])  # even: centred on 2 i + 1; odd: on 2 i
def test_option_a_shortcut_keeps_the_pixels_the_strided_conv_is_centred_on(side):
    x = np.random.default_rng(0).normal(size=(2, side, side, 2)).astype("float32")
    conv = keras.layers.Conv2D(2, 3, strides=2, padding="same", use_bias=False)
    conv.build(x.shape)
    centre = np.zeros((3, 3, 2, 2), "float32")
    centre[1, 1] = np.eye(2)  # the conv copies the pixel it is centred on
    conv.kernel.assign(centre)
    y = np.asarray(models.ShortcutA(6)(x))
    assert y.shape == (2, (side + 1) // 2, (side + 1) // 2, 6)
    np.testing.assert_array_equal(y[..., 2:4], np.asarray(conv(x)))
    assert not y[..., :2].any() and not y[..., 4:].any()  # the new channels: zeros


def test_skip_init_starts_every_block_as_the_identity():
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    net = models.resnet((8, 8, 1), depth=14, width=4, norm="none", skip_init=True)
    scales = [layer for layer in net.layers if isinstance(layer, models.ResidualScale)]
    assert len(scales) == 6 and all(float(s.alpha) == 0.0 for s in scales)
    first = keras.Model(net.input, net.get_layer("relu1").output)
    last = keras.Model(net.input, net.get_layer("pool").output)
    # identity blocks: the pooled features are the first layer's output, subsampled and padded
    h = np.asarray(first(x))[:, 1::2, 1::2][:, 1::2, 1::2]
    expected = np.pad(h.mean(axis=(1, 2)), [(0, 0), (6, 6)])
    np.testing.assert_allclose(np.asarray(last(x)), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="needs shortcuts"):
        models.resnet((8, 8, 1), depth=8, shortcuts=False, skip_init=True)


def test_resnet_weight_decay_is_an_l2_penalty_whose_gradient_is_decay_times_w():
    net = models.resnet((8, 8, 1), depth=8, width=4, weight_decay=1e-4)
    kernels = [layer.kernel for layer in net.layers if hasattr(layer, "kernel")]
    assert len(net.losses) == len(kernels) == 8
    expected = sum(1e-4 / 2 * float(np.sum(np.square(k.numpy()))) for k in kernels)
    np.testing.assert_allclose(float(sum(net.losses)), expected, rtol=1e-5)
    assert not models.resnet((8, 8, 1), depth=8, width=4).losses
    with pytest.raises(ValueError, match="weight_decay"):
        models.resnet((8, 8, 1), depth=8, weight_decay=-1.0)


def test_resnet_with_fused_batch_norm_matches_keras_batch_norm():
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    plain = models.resnet((8, 8, 1), depth=8, width=8)
    keras.utils.set_random_seed(0)
    fused = models.resnet((8, 8, 1), depth=8, width=8, norm="batch_fused")
    fused.set_weights(plain.get_weights())
    np.testing.assert_allclose(np.asarray(fused(x, training=True)),
                               np.asarray(plain(x, training=True)), rtol=1e-4, atol=1e-4)


def test_resnet_rejects_depths_that_are_not_6n_plus_2_and_unknown_norms():
    with pytest.raises(ValueError, match="6 n \\+ 2"):
        models.resnet((32, 32, 3), depth=21)
    with pytest.raises(ValueError, match="norm must be"):
        models.resnet((32, 32, 3), norm="layer")


@pytest.mark.parametrize("norm, kind", [("none", None), ("batch", keras.layers.BatchNormalization),
                                        ("noisy_batch", layers.NoisyBatchNorm)])
def test_vgg_stages_and_their_normalization(norm, kind):
    model = models.vgg((28, 28, 1), norm=norm, widths=(8, 16))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8, 8, 16, 16]
    assert all(c.use_bias == (norm == "none") for c in convs)
    norms = [layer for layer in model.layers if layer.name.startswith("norm")]
    assert len(norms) == (0 if kind is None else 4) and all(type(n) is kind for n in norms)
    assert model(np.zeros((2, 28, 28, 1), "float32"), training=True).shape == (2, 10)


def test_mlp_is_ioffe_and_szegedys_three_layers_of_100_sigmoids():
    model = models.mlp((28, 28, 1), norm="batch")
    assert [layer.name for layer in model.layers] == [
        "flatten", "fc1", "norm1", "sigmoid1", "fc2", "norm2", "sigmoid2", "fc3", "norm3",
        "sigmoid3", "logits"]
    assert all(model.get_layer(f"fc{i}").units == 100 for i in (1, 2, 3))
    plain = models.mlp((28, 28, 1))
    assert plain.count_params() == 784 * 100 + 100 + 2 * (100 * 100 + 100) + 1010
