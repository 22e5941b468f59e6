"""The probes of chapters 6 and 7, checked where the answer is known in closed form, and checked
to leave a model exactly as they found it."""

import numpy as np
import pytest

from normlab import data, layers, models, probes, runtime, train

tf, keras = runtime.import_tensorflow()
RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 3)).astype("float32")
Y = RNG.normal(size=(32, 1)).astype("float32")


def linear(units=(1,), learning_rate=0.1):
    """Dense layers without bias or activation, trained on a squared error: every gradient and
    every step has a closed form."""
    model = keras.Sequential([keras.Input((3,))] + [
        keras.layers.Dense(u, use_bias=False, name=f"fc{i}") for i, u in enumerate(units, 1)])
    model.compile(keras.optimizers.SGD(learning_rate), "mse")
    return model


def mse_gradient(x, w, y):  # L = mean((x w - y)^2)
    return 2 / len(x) * x.T @ (x @ w - y)


def test_gradient_norms_are_those_of_a_linear_least_squares_problem():
    model = linear()
    w = model.get_layer("fc1").kernel.numpy()
    norms = probes.gradient_norms(model, X, Y)
    assert list(norms) == ["fc1"]
    np.testing.assert_allclose(norms["fc1"], np.linalg.norm(mse_gradient(X, w, Y)), rtol=1e-5)


def test_gradients_are_compiled_per_loss_and_the_cache_lets_the_model_go():
    import gc
    import weakref

    model = linear()
    w = model.get_layer("fc1").kernel.numpy()
    mae = np.linalg.norm(X.T @ np.sign(X @ w - Y) / len(X))  # L = mean(|x w - y|)
    np.testing.assert_allclose(probes.gradient_norms(model, X, Y, loss="mae")["fc1"], mae, rtol=1e-5)
    np.testing.assert_allclose(probes.gradient_norms(model, X, Y)["fc1"],
                               np.linalg.norm(mse_gradient(X, w, Y)), rtol=1e-5)
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None


def test_the_landscape_of_a_quadratic_loss_is_known_exactly():
    """For L(w) = mean((x w - y)^2) the Hessian is H = 2 x^T x / N: the loss along -g is
    L - eta |g|^2 + eta^2 g^T H g / 2, the gradient changes by eta |H g|, and beta = |H g| / |g|."""
    model = linear()
    w = model.get_layer("fc1").kernel.numpy().astype(float)
    x, y = X.astype(float), Y.astype(float)
    g, hessian = mse_gradient(x, w, y), 2 / len(x) * x.T @ x
    loss = float(np.mean((x @ w - y) ** 2))
    etas = np.array([0.05, 0.1, 0.2, 0.4])
    walk = probes.loss_landscape(model, X, Y, etas)
    curvature = (g.T @ hessian @ g).item()
    np.testing.assert_allclose(walk["loss_at_w"], loss, rtol=1e-5)
    np.testing.assert_allclose(walk["loss"], loss - etas * (g**2).sum() + etas**2 * curvature / 2,
                               rtol=1e-4)
    np.testing.assert_allclose(walk["gradient_change"], etas * np.linalg.norm(hessian @ g), rtol=1e-4)
    np.testing.assert_allclose(walk["beta"], np.linalg.norm(hessian @ g) / np.linalg.norm(g), rtol=1e-4)
    np.testing.assert_allclose(walk["gradient_norm"], np.linalg.norm(g), rtol=1e-5)
    assert walk["beta"] <= np.linalg.eigvalsh(hessian).max() * (1 + 1e-5)


def test_the_landscape_along_a_given_direction_is_known_exactly():
    """Along d: L + eta g.d + eta^2 d^T H d / 2, a gradient change of eta |H d|, beta = |H d| / |d|."""
    model = linear()
    w = model.get_layer("fc1").kernel.numpy().astype(float)
    x, y = X.astype(float), Y.astype(float)
    g, hessian = mse_gradient(x, w, y), 2 / len(x) * x.T @ x
    d = np.random.default_rng(1).normal(size=w.shape)
    loss = float(np.mean((x @ w - y) ** 2))
    etas = np.array([0.05, 0.1])
    walk = probes.loss_landscape(model, X, Y, etas, direction=[d])
    curvature = (d.T @ hessian @ d).item()
    np.testing.assert_allclose(walk["loss"], loss + etas * (g * d).sum() + etas**2 * curvature / 2, rtol=1e-4)
    np.testing.assert_allclose(walk["gradient_change"], etas * np.linalg.norm(hessian @ d), rtol=1e-4)
    np.testing.assert_allclose(walk["beta"], np.linalg.norm(hessian @ d) / np.linalg.norm(d), rtol=1e-4)
    with pytest.raises(ValueError, match="direction has 5 values"):
        probes.loss_landscape(model, X, Y, etas, direction=[d, np.ones(2)])


def test_the_optimizer_step_is_the_sgd_step_with_its_momentum():
    model = linear()
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    w = model.get_layer("fc1").kernel.numpy()
    g = mse_gradient(X, w, Y)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.momentums[0].assign(np.ones_like(w))  # a velocity left by earlier steps
    step = probes.optimizer_step(model, X, Y)[0]
    np.testing.assert_allclose(step, 0.9 * np.ones_like(w) - 0.05 * g, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(model.get_layer("fc1").kernel.numpy(), w)  # undone


def test_internal_covariate_shift_follows_definition_2_1_on_a_two_layer_linear_net():
    """Layer 2's gradient is taken again after layer 1 (and only layer 1) took its SGD step."""
    lr = 0.1
    model = linear(units=(2, 1), learning_rate=lr)
    w1, w2 = (model.get_layer(n).kernel.numpy().astype(float) for n in ("fc1", "fc2"))
    x, y = X.astype(float), Y.astype(float)

    def gradients(w1, w2):
        r = 2 / len(x) * (x @ w1 @ w2 - y)
        return x.T @ r @ w2.T, (x @ w1).T @ r

    g1, g2 = gradients(w1, w2)
    _, g2_after = gradients(w1 - lr * g1, w2)
    shift = probes.internal_covariate_shift(model, X, Y)
    assert shift["fc1"][:2] == pytest.approx((0.0, 1.0), abs=1e-6)  # nothing comes before layer 1
    cos = float(g2.ravel() @ g2_after.ravel() / np.linalg.norm(g2) / np.linalg.norm(g2_after))
    np.testing.assert_allclose(shift["fc2"], (np.linalg.norm(g2 - g2_after), cos, np.linalg.norm(g2)),
                               rtol=1e-4)


def test_update_ratios_are_the_sgd_step_over_the_weight():
    model = linear(learning_rate=0.05)
    w = model.get_layer("fc1").kernel.numpy()
    expected = 0.05 * np.linalg.norm(mse_gradient(X, w, Y)) / np.linalg.norm(w)
    np.testing.assert_allclose(probes.update_ratios(model, X, Y)["fc1"], expected, rtol=1e-4)
    with pytest.raises(ValueError, match="compile the model"):
        probes.update_ratios(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]), X, Y)


def test_activation_statistics_and_saturation_match_numpy():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="fc1"),
                              keras.layers.Activation("sigmoid", name="sigmoid1"),
                              keras.layers.Dense(4, name="fc2"), keras.layers.ReLU(name="relu2"),
                              keras.layers.Dense(1, name="out")])
    x = 10 * X
    outputs = probes.layer_outputs(model, x, ["fc1", "sigmoid1", "relu2"])
    np.testing.assert_allclose(outputs["fc1"], x @ model.get_layer("fc1").kernel.numpy(), rtol=1e-5,
                               atol=1e-5)
    assert probes.activation_std(model, x) == pytest.approx(
        {"fc1": outputs["fc1"].std(), "fc2": np.std(model.get_layer("fc2")(outputs["sigmoid1"]))},
        rel=1e-5)
    a = outputs["sigmoid1"]
    expected = {"sigmoid1": np.mean(4 * a * (1 - a) < 0.05), "relu2": np.mean(outputs["relu2"] <= 0)}
    assert probes.saturated_fraction(model, x, ["sigmoid1", "relu2"]) == pytest.approx(expected)
    assert 0 < expected["sigmoid1"] < 1
    with pytest.raises(ValueError, match="saturation is defined"):
        probes.saturated_fraction(model, x, ["fc1"])


def test_response_layers_are_the_normalized_outputs_of_every_hidden_weight_layer():
    with_bn = models.resnet((8, 8, 1), depth=8, width=4)
    assert probes.response_layers(with_bn) == [f"norm{i}" for i in range(1, 8)]
    assert probes.response_layers(models.resnet((8, 8, 1), depth=8, width=4, norm="none")) == [
        f"conv{i}" for i in range(1, 8)]
    assert probes.response_layers(models.mlp((4, 4, 1), norm="batch")) == ["norm1", "norm2", "norm3"]


def snapshot(model):
    return [v.numpy().copy() for v in [*model.variables, *model.optimizer.variables]]


def test_every_probe_leaves_weights_optimizer_state_moving_statistics_and_noise_alone():
    """A probe between two training steps changes nothing that the next step sees: the weights
    after the second step are those of a twin that was never probed."""
    rng = np.random.default_rng(1)
    subset = data.Dataset("fashion_mnist", rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8),
                          rng.integers(0, 10, 64), rng.integers(0, 256, (32, 8, 8, 1), dtype=np.uint8),
                          rng.integers(0, 10, 32), "test")
    config = train.RunConfig(model="vgg", batch_size=16, optimizer="sgd", learning_rate=0.1)
    x, y = subset.x_train[:16].astype("float32"), subset.y_train[:16]

    def trained_once():
        runtime.set_seed(0)
        model = models.vgg((8, 8, 1), norm="noisy_batch", widths=(4, 8))
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.train_on_batch(x, y)
        return model

    probed, twin = trained_once(), trained_once()
    before = snapshot(probed)
    assert any(isinstance(layer, layers.NoisyBatchNorm) for layer in probed.layers)
    probes.gradient_norms(probed, x, y)
    probes.update_ratios(probed, x, y)
    probes.internal_covariate_shift(probed, x, y)
    probes.loss_landscape(probed, x, y, [0.1, 0.2])
    probes.saturated_fraction(probed, x, ["relu1"])
    for name in ("response_std", "gradient_norm", "response_quantiles", "ics", "landscape",
                 "accuracy"):
        train.PROBES[name](probed, subset, config)
    for old, new in zip(before, snapshot(probed), strict=True):
        np.testing.assert_array_equal(old, new)
    probed.train_on_batch(x, y)
    twin.train_on_batch(x, y)
    for a, b in zip(snapshot(probed), snapshot(twin), strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigmoid_percentiles_follow_one_unit_of_the_last_hidden_layer():
    rng = np.random.default_rng(2)
    subset = data.Dataset("fashion_mnist", rng.integers(0, 256, (8, 4, 4, 1), dtype=np.uint8),
                          rng.integers(0, 10, 8), rng.integers(0, 256, (50, 4, 4, 1), dtype=np.uint8),
                          rng.integers(0, 10, 50), "test")
    model = models.mlp((4, 4, 1), norm="batch")
    inputs = probes.layer_outputs(model, subset.x_test, ["norm3"])["norm3"][:, 0]
    assert probes.sigmoid_percentiles(model, subset, None) == pytest.approx(
        np.percentile(inputs, [15, 50, 85]).tolist(), rel=1e-5)


def tape(model, loss="mse"):
    """The loss and ‖∂L/∂kernel‖ of every layer with a trainable kernel, straight from a tape."""
    layers_ = [layer for layer in model._flatten_layers() if getattr(layer, "kernel", None) is not None
               and any(layer.kernel is v for v in model.trainable_variables)]
    with tf.GradientTape() as t:
        value = tf.reduce_mean(keras.losses.get(loss)(Y, model(X, training=True)))
    grads = t.gradient(value, [layer.kernel for layer in layers_])
    return float(value), {layer.name: float(tf.norm(g)) for layer, g in zip(layers_, grads, strict=True)}


def test_the_gradient_cache_follows_frozen_layers_and_frozen_batch_norms():
    """Freezing a layer changes the trainable variables and puts a batch norm in inference mode:
    the compiled gradients must follow, or the numbers of one layer land under another's name."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="a"),
                              keras.layers.LayerNormalization(name="ln"), keras.layers.Dense(4, name="b"),
                              keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(1, name="c")])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(X, Y, epochs=2, verbose=0)  # moving statistics away from the batch's
    for frozen in [(), ("ln",), ("ln", "bn"), ("bn",), ("a",), ()]:
        for layer in model.layers:
            layer.trainable = layer.name not in frozen
        norms = probes.gradient_norms(model, X, Y)
        assert norms == pytest.approx(tape(model)[1], rel=1e-5), frozen
        assert list(norms) == [n for n in ("a", "b", "c") if n not in frozen]


def test_frozen_kernels_are_left_out_and_a_frozen_model_is_refused():
    model = linear(units=(2, 1))
    model.get_layer("fc1").trainable = False
    shift = probes.internal_covariate_shift(model, X, Y)
    assert list(shift) == ["fc2"] and shift["fc2"][:2] == pytest.approx((0.0, 1.0), abs=1e-6)
    assert probes.gradient_norms(model, X, Y) == pytest.approx(tape(model)[1], rel=1e-5)
    w, g = model.get_layer("fc2").kernel.numpy(), tape(model)[1]["fc2"]
    assert probes.update_ratios(model, X, Y) == pytest.approx({"fc2": 0.1 * g / np.linalg.norm(w)}, rel=1e-4)
    assert probes.loss_landscape(model, X, Y, [0.1])["loss_at_w"] == pytest.approx(tape(model)[0], rel=1e-5)

    base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="inner")], name="base")
    tuned = keras.Sequential([base, keras.layers.Dense(1, name="head")])
    tuned.compile(keras.optimizers.SGD(0.1), "mse")
    base.trainable = False
    assert list(probes.internal_covariate_shift(tuned, X, Y)) == ["head"]
    assert probes.gradient_norms(tuned, X, Y) == pytest.approx(tape(tuned)[1], rel=1e-5)

    tuned.trainable = False
    for probe in (probes.gradient_norms, probes.update_ratios, probes.internal_covariate_shift):
        with pytest.raises(ValueError, match="no weight layer with a trainable kernel"):
            probe(tuned, X, Y)
    with pytest.raises(ValueError, match="no trainable weight"):
        probes.loss_landscape(tuned, X, Y, [0.1])


def test_an_unbuilt_model_is_refused_rather_than_built_with_random_weights():
    model = keras.Sequential([keras.layers.Dense(4, name="fc1"), keras.layers.Dense(1, name="fc2")])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    for probe in (probes.gradient_norms, probes.update_ratios, probes.internal_covariate_shift,
                  lambda *a: probes.loss_landscape(*a, [0.1]), lambda m, x, y: probes.activation_std(m, x),
                  lambda m, x, y: probes.layer_outputs(m, x, ["fc1"]),
                  lambda m, x, y: probes.saturated_fraction(m, x, ["fc1"])):
        with pytest.raises(ValueError, match=r"not built .* call it on data"):
            probe(model, X, Y)
    assert not model.built and not model.optimizer.built


def test_probes_see_the_layers_inside_nested_models():
    inputs = keras.Input((3,))
    hidden = keras.layers.ReLU(name="relu")(keras.layers.Dense(4, name="inner")(inputs))
    base = keras.Model(inputs, keras.layers.Dense(4, name="fc")(hidden), name="base")
    model = keras.Sequential([keras.Input((3,)), base, keras.layers.Dense(1, name="fc")])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    assert [layer.name for layer in probes.weight_layers(model)] == ["inner", "fc", "fc"]
    norms = probes.gradient_norms(model, X, Y)  # two layers named fc: the inner one is qualified
    assert list(norms) == ["inner", "base/fc", "fc"]
    _, expected = tape(model)
    assert [norms["inner"], norms["fc"]] == pytest.approx([expected["inner"], expected["fc"]], rel=1e-5)
    assert list(probes.internal_covariate_shift(model, X, Y)) == ["inner", "base/fc", "fc"]
    assert probes.response_layers(model) == ["inner", "base/fc"]
    inner = model.get_layer("base").get_layer("inner")
    outputs = probes.layer_outputs(model, X, ["inner", "relu", "base"])
    np.testing.assert_allclose(outputs["inner"], X @ inner.kernel.numpy() + inner.bias.numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(outputs["base"], base(X), rtol=1e-5, atol=1e-6)
    assert probes.saturated_fraction(model, X, ["relu"]) == {
        "relu": pytest.approx(np.mean(outputs["inner"] <= 0))}


RELUS = [keras.layers.ReLU(negative_slope=0.3), keras.layers.ReLU(negative_slope=0.01),
         keras.layers.ReLU(max_value=1.0), keras.layers.ReLU(threshold=1.0),
         keras.layers.ReLU(negative_slope=0.3, max_value=2.0, threshold=0.5), keras.layers.LeakyReLU(0.3),
         keras.layers.LeakyReLU(0.01), *(keras.layers.Dense(4, activation=a, use_bias=False,
                                                          kernel_initializer="identity")
                                         for a in ("relu", "relu6", "leaky_relu"))]


@pytest.mark.parametrize("activation", RELUS, ids=lambda layer: str(layer.get_config()))
def test_saturation_follows_the_slope_of_each_relu(activation):
    """The fraction where the derivative, taken by a tape on the inputs, is below 5 % of its
    largest value (the inputs reach every piece of each function)."""
    x = tf.constant(4 * RNG.normal(size=(256, 4)).astype("float32"))
    model = keras.Sequential([keras.Input((4,)), activation])
    with tf.GradientTape() as t:
        t.watch(x)
        out = tf.reduce_sum(activation(x))
    slope = t.gradient(out, x).numpy()
    expected = np.mean(slope < 0.05 * slope.max())
    assert probes.saturated_fraction(model, x.numpy(), [activation.name]) == {
        activation.name: pytest.approx(expected)}


def test_saturation_of_a_leaky_and_a_capped_relu_on_a_known_input():
    x = np.array([[-2.0, -1.0, 0.5, 1.5, 2.0, 3.0, 4.0]]).T.astype("float32")
    for activation, expected in [(keras.layers.LeakyReLU(0.3), 0.0),
                                 (keras.layers.ReLU(max_value=2.5, threshold=0.4), 4 / 7)]:
        model = keras.Sequential([keras.Input((1,)), activation])
        fraction = probes.saturated_fraction(model, x, [activation.name])[activation.name]
        assert fraction == pytest.approx(expected)
    model = keras.Sequential([keras.Input((1,)), keras.layers.PReLU(name="prelu")])
    with pytest.raises(ValueError, match="saturation is defined"):
        probes.saturated_fraction(model, x, ["prelu"])


@pytest.mark.parametrize("steps", [[], [0.0], [0.1, 0.0], [0.0, 0.1], [-0.1], [np.nan], [np.inf]])
def test_landscape_steps_must_be_positive_and_finite(steps):
    with pytest.raises(ValueError, match="step_sizes must be one or more positive, finite numbers"):
        probes.loss_landscape(linear(), X, Y, steps)


def test_a_model_with_nothing_to_measure_says_so():
    model = keras.Sequential([keras.Input((3,)), keras.layers.ReLU(name="relu")])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    y = np.zeros((len(X), 3), "float32")
    for probe in (probes.gradient_norms, probes.update_ratios, probes.internal_covariate_shift):
        with pytest.raises(ValueError, match="no weight layer with a trainable kernel"):
            probe(model, X, y)
    with pytest.raises(ValueError, match="no trainable weight"):
        probes.loss_landscape(model, X, y, [0.1])
    with pytest.raises(ValueError, match="no hidden weight layer"):
        probes.activation_std(model, X)
    for names in ([], ()):
        with pytest.raises(ValueError, match="list of layer names is empty"):
            probes.layer_outputs(model, X, names)
        with pytest.raises(ValueError, match="list of layer names is empty"):
            probes.saturated_fraction(model, X, names)
    with pytest.raises(ValueError, match="no layer named fc9"):
        probes.activation_std(model, X, ["fc9"])
