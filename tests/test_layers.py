import numpy as np
import pytest

from normlab import layers, runtime

tf, keras = runtime.import_tensorflow()

SHAPES_AND_AXES = [((16, 5), -1), ((16, 5), 0), ((8, 6, 6, 3), -1), ((8, 3, 6, 6), 1),
                   ((4, 7, 5), 1), ((1, 3, 3, 3), 0), ((5, 2, 3, 4, 2), -2)]


def random_input(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(2.0, 3.0, size=shape)


def keras_bn(x, axis, **kwargs):
    layer = keras.layers.BatchNormalization(axis=axis, **kwargs)
    layer.build(x.shape)
    return layer


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
def test_numpy_forward_matches_keras(shape, axis):
    x = random_input(shape)
    rng = np.random.default_rng(1)
    n = shape[axis]
    gamma, beta = rng.uniform(0.5, 2.0, n), rng.normal(size=n)
    layer = keras_bn(x, axis)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    expected = layer(x.astype("float32"), training=True).numpy()
    y, cache = layers.batch_norm_forward(x, gamma, beta, axis=axis)
    np.testing.assert_allclose(y, expected, atol=2e-5)
    axes = layers.reduction_axes(x.ndim, axis)
    np.testing.assert_allclose(cache["mean"], x.mean(axis=axes))
    np.testing.assert_allclose(cache["variance"], x.var(axis=axes))


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
def test_numpy_backward_matches_gradient_tape(shape, axis):
    x = random_input(shape)
    dy = random_input(shape, seed=2)
    n = shape[axis]
    gamma, beta = np.linspace(0.5, 1.5, n), np.linspace(-1, 1, n)
    layer = keras_bn(x, axis, dtype="float64")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True)
    dx_tf, dgamma_tf, dbeta_tf = tape.gradient(y, [xt, layer.gamma, layer.beta], output_gradients=dy)
    _, cache = layers.batch_norm_forward(x, gamma, beta, axis=axis)
    dx, dgamma, dbeta = layers.batch_norm_backward(dy, cache)
    np.testing.assert_allclose(dx, dx_tf.numpy(), atol=1e-10)
    np.testing.assert_allclose(dgamma, dgamma_tf.numpy(), atol=1e-10)
    np.testing.assert_allclose(dbeta, dbeta_tf.numpy(), atol=1e-10)


def test_numpy_backward_matches_finite_differences():
    x = random_input((6, 3))
    dy = random_input((6, 3), seed=3)
    gamma = np.array([0.5, 1.0, 2.0])
    _, cache = layers.batch_norm_forward(x, gamma)
    dx, _, _ = layers.batch_norm_backward(dy, cache)
    h, numeric = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        loss = lambda z: (layers.batch_norm_forward(z, gamma)[0] * dy).sum()  # noqa: E731
        numeric[idx] = (loss(xp) - loss(xm)) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
def test_from_scratch_layer_matches_keras_in_training_and_inference(shape, axis):
    x = random_input(shape).astype("float32")
    ours, theirs = layers.BatchNorm(axis=axis, momentum=0.9), keras_bn(x, axis, momentum=0.9)
    for _ in range(3):
        np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-5)
    np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=1e-6)
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=1e-5)


def build_model(norm_layer, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(4, 3), norm_layer,
                             keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(3)])


def test_from_scratch_layer_trains_like_keras_inside_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 6, 2)).astype("float32")
    y = rng.integers(0, 3, 64)
    ours = build_model(layers.BatchNorm(), seed=0)
    theirs = build_model(keras.layers.BatchNormalization(), seed=0)
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(ours.layers[1].moving_mean.numpy(), 0.0)  # the statistics really moved
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), atol=1e-4)


def test_frozen_layer_uses_moving_statistics_like_keras():
    x = random_input((8, 3)).astype("float32")
    ours, theirs = layers.BatchNorm(), keras_bn(x, -1)
    ours.build(x.shape)
    ours.trainable = theirs.trainable = False
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-6)
    np.testing.assert_allclose(ours.moving_mean, 0.0)


def test_config_round_trip_and_serialization(tmp_path):
    layer = layers.BatchNorm(axis=1, momentum=0.5, epsilon=1e-2, center=False,
                             gamma_initializer="random_normal", name="bn")
    clone = layers.BatchNorm.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((3, 4)), layer])
    x = random_input((5, 3, 4)).astype("float32")
    model(x, training=True)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.layers[0], layers.BatchNorm)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert len(restored.layers[0].trainable_weights) == 1  # center=False: gamma only


def test_parameter_counts_match_keras():
    ours = keras.Sequential([keras.Input((4, 4, 5)), layers.BatchNorm()])
    theirs = keras.Sequential([keras.Input((4, 4, 5)), keras.layers.BatchNormalization()])
    assert ours.count_params() == theirs.count_params() == 20
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"axis": 1.5}, "axis must be an int"),
    ({"momentum": 1.5}, "momentum must be in"),
    ({"epsilon": 0.0}, "epsilon must be > 0"),
])
def test_layer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.BatchNorm(**kwargs)


def test_layer_rejects_bad_axis_and_rank():
    with pytest.raises(ValueError, match="out of range"):
        layers.BatchNorm(axis=3)(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="rank >= 2"):
        layers.BatchNorm()(np.ones((3,), "float32"))


def test_numpy_reference_rejects_bad_inputs():
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match="rank >= 2"):
        layers.batch_norm_forward(np.ones(3))
    with pytest.raises(ValueError, match="out of range"):
        layers.batch_norm_forward(x, axis=2)
    with pytest.raises(ValueError, match="axis must be an int"):
        layers.batch_norm_forward(x, axis=(0, 1))
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        layers.batch_norm_forward(x, gamma=np.ones(4))
    with pytest.raises(ValueError, match="epsilon"):
        layers.batch_norm_forward(x, epsilon=-1)
    _, cache = layers.batch_norm_forward(x)
    with pytest.raises(ValueError, match="dy must have"):
        layers.batch_norm_backward(np.ones((3, 3)), cache)
