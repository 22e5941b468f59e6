import json

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


NORMS = ["BatchNorm", "GhostBatchNorm", "AdjustedBatchNorm", "FusedBatchNorm", "BatchRenorm"]
POLICIES = ["float32", "mixed_float16", "mixed_bfloat16", "float64"]
# Outputs are compared at the tolerance of the compute dtype; weights and moving statistics are
# float32 (float64) under every policy, so they are compared tightly: float16 statistics would fail.
# Each tolerance comes from the arithmetic: two computations that reduce n values in different
# orders (another kernel, another layout) differ by at most about n * eps times the values' size
# (Higham, Accuracy and Stability of Numerical Algorithms, section 4.2). The tests reduce at most
# about a thousand values per channel, of size at most about 10, and pairwise summation keeps
# real errors far below the worst case, so: float32 (eps 1.2e-7) 1e-4 relative; float16 (eps
# 9.8e-4) and bfloat16 (eps 7.8e-3) outputs are rounded once more to 16 bits, so about 10 eps;
# float64 (eps 2.2e-16) 1e-10. The bare atol of 1e-5 to 1e-4 used below compares float32 outputs
# of size about 1 to 5 over at most a few hundred values per channel (300 eps x 5 = 1.8e-4 at
# worst); 1e-6 compares computations that only scale or shift the same values.
TOLERANCES = {"float32": dict(rtol=1e-4, atol=1e-5), "mixed_float16": dict(rtol=1e-2, atol=1e-2),
              "mixed_bfloat16": dict(rtol=5e-2, atol=5e-2), "float64": dict(rtol=1e-10, atol=1e-10)}
VARIABLE_TOLERANCES = {policy: dict(rtol=1e-12, atol=1e-12) if policy == "float64" else
                       dict(rtol=1e-4, atol=1e-5) for policy in POLICIES}


@keras.saving.register_keras_serializable(package="normlab_tests")
def no_adjustment(shape):
    return 1.0, 0.0


def make_norm(name, batch_size=8, **kwargs):
    """One of the normlab batch-norm layers, set up to compute what Keras's layer computes."""
    if name == "BatchRenorm":  # in its warm-up, which is plain batch norm
        return layers.BatchRenorm(warmup_steps=10**6, **kwargs)
    if name == "GhostBatchNorm":
        return layers.GhostBatchNorm(virtual_batch_size=batch_size, **kwargs)  # one ghost batch
    if name == "AdjustedBatchNorm":
        return layers.AdjustedBatchNorm(adjustment=no_adjustment, **kwargs)
    return getattr(layers, name)(**kwargs)


def dtype_of(tensor_or_variable):
    return keras.backend.standardize_dtype(tensor_or_variable.dtype)


@pytest.fixture
def set_dtype_policy():
    """``keras.mixed_precision.set_dtype_policy``, put back to float32 after the test."""
    yield keras.mixed_precision.set_dtype_policy
    keras.mixed_precision.set_dtype_policy("float32")


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


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("argument, value", [
    ("epsilon", float("nan")), ("epsilon", float("inf")), ("epsilon", "0.001"), ("epsilon", None),
    ("epsilon", True), ("momentum", float("nan")), ("momentum", -float("inf")), ("momentum", "0.9"),
    ("momentum", None), ("momentum", False), ("axis", 1.5), ("axis", "1"), ("axis", [1, 2]),
    ("axis", None), ("axis", True),
])
def test_layers_reject_nonsense_arguments_by_name(name, argument, value):
    with pytest.raises(ValueError, match=rf"^{argument} must be"):
        make_norm(name, **{argument: value})


@pytest.mark.parametrize("name", NORMS)
def test_layers_take_numpy_numbers_as_keras_does(name):
    x = random_input((8, 4, 4, 3)).astype("float32")
    ours = make_norm(name, batch_size=np.int64(8), axis=np.int64(-1), epsilon=np.float64(1e-3))
    theirs = keras.layers.BatchNormalization(axis=np.int64(-1))
    assert type(ours.axis) is int and type(ours.epsilon) is float
    assert json.loads(json.dumps(ours.get_config()))["axis"] == -1  # a NumPy int would not serialize
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-5)


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("dtype", ["string", "complex64"])
def test_layers_reject_inputs_without_a_mean(name, dtype):
    x = random_input((8, 4, 4, 3)).astype("float32")
    inputs = tf.fill(x.shape, "a") if dtype == "string" else tf.complex(x, x)
    for training in (True, False):
        with pytest.raises(ValueError, match="batch norm needs real numeric inputs, got an input of "
                                             f"dtype {dtype}"):
            make_norm(name)(inputs, training=training)


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "float64"])
@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool"])
def test_integer_and_boolean_inputs_are_normalized_as_keras_does(name, policy, dtype):
    # Keras normalizes integers in float32 under every policy, float64 too, then casts the output
    x = tf.cast(np.random.default_rng(0).integers(0, 9, (8, 4, 4, 3)), dtype)
    ours, theirs = make_norm(name, dtype=policy), keras.layers.BatchNormalization(dtype=policy)
    for training in (True, False):
        y, expected = ours(x, training=training), theirs(x, training=training)
        assert dtype_of(y) == dtype_of(expected) == keras.mixed_precision.Policy(policy).compute_dtype
        np.testing.assert_allclose(np.asarray(y, np.float64), np.asarray(expected, np.float64),
                                   **TOLERANCES["mixed_float16" if policy == "mixed_float16" else "float32"])
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=1e-6)


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
    for epsilon in (float("nan"), float("inf"), "0.001", None):
        with pytest.raises(ValueError, match=r"^epsilon must be a finite real number"):
            layers.batch_norm_forward(x, epsilon=epsilon)
    with pytest.raises(ValueError, match="ndim must be an int"):
        layers.reduction_axes(2.0)
    _, cache = layers.batch_norm_forward(x)
    with pytest.raises(ValueError, match="dy must have"):
        layers.batch_norm_backward(np.ones((3, 3)), cache)


def test_numpy_backward_names_what_its_cache_lacks():
    x = np.ones((4, 3))
    _, cache = layers.batch_norm_forward(x)
    partial = {key: value for key, value in cache.items() if key not in ("inv_std", "m")}
    with pytest.raises(ValueError, match=r"^cache must be the dict that batch_norm_forward returns.*: "
                                         r"missing inv_std, m$"):
        layers.batch_norm_backward(x, partial)
    for wrong in (None, (x, cache)):
        with pytest.raises(ValueError, match=f"got {type(wrong).__name__}$"):
            layers.batch_norm_backward(x, wrong)


@pytest.mark.parametrize("shape, axis", [((8, 4, 4, 3), -1), ((12, 5), -1), ((6, 3, 2, 2), 1)])
def test_ghost_batch_norm_normalizes_each_strided_virtual_batch(shape, axis):
    x = random_input(shape).astype("float32")
    layer = layers.GhostBatchNorm(virtual_batch_size=2, axis=axis, momentum=0.5)
    y = np.asarray(layer(x, training=True))
    n_ghosts = shape[0] // 2
    means, variances = [], []
    for j in range(n_ghosts):  # as in Keras 2: a reshape to (v, B / v, ...)
        expected, cache = layers.batch_norm_forward(x[j::n_ghosts].astype(np.float64), axis=axis)
        np.testing.assert_allclose(y[j::n_ghosts], expected, atol=2e-5)
        means.append(cache["mean"])
        variances.append(cache["variance"])
    np.testing.assert_allclose(layer.moving_mean, 0.5 * np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance, 0.5 + 0.5 * np.mean(variances, axis=0), rtol=1e-5)


def test_ghost_batch_norm_is_batch_norm_at_inference_and_for_one_ghost():
    x = random_input((8, 3)).astype("float32")
    ghost, plain = layers.GhostBatchNorm(virtual_batch_size=8), layers.BatchNorm()
    np.testing.assert_allclose(ghost(x, training=True), plain(x, training=True), atol=1e-5)
    np.testing.assert_allclose(ghost.moving_variance, plain.moving_variance, rtol=1e-6)
    np.testing.assert_allclose(ghost(x, training=False), plain(x, training=False), atol=1e-6)


def test_ghost_batch_norm_trains_and_saves(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 64)
    model = build_model(layers.GhostBatchNorm(virtual_batch_size=4), seed=0)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "ghost.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.layers[1].virtual_batch_size == 4
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_ghost_batch_norm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive int"):
        layers.GhostBatchNorm(virtual_batch_size=0)
    with pytest.raises(ValueError, match="axis must not be 0"):
        layers.GhostBatchNorm(virtual_batch_size=2, axis=0)(np.ones((8, 2), "float32"))
    with pytest.raises(ValueError, match="virtual_batch_size must be an int"):
        layers.GhostBatchNorm(virtual_batch_size=2.0)
    with pytest.raises(ValueError, match="virtual_batch_size must be an int"):
        layers.GhostBatchNorm(virtual_batch_size=True)


def ghost_reference(x, v, axis=-1, dy=None):
    """GhostBatchNorm by its docstring, with the NumPy reference per ghost batch: the outputs, the
    example-weighted average of the ghost batches' means and variances, and dx for ``dy``."""
    n = len(x) // v
    ghosts = [np.arange(j, n * v, n) for j in range(n)]  # the reshape to (v, B / v, ...)
    if len(x) % v:
        ghosts.append(np.arange(n * v, len(x)))  # the rest, at the end
    y, dx = np.zeros(x.shape), np.zeros(x.shape)
    mean, variance = 0.0, 0.0
    for ghost in ghosts:
        y[ghost], cache = layers.batch_norm_forward(x[ghost].astype(np.float64), axis=axis)
        mean = mean + cache["mean"] * len(ghost) / len(x)
        variance = variance + cache["variance"] * len(ghost) / len(x)
        if dy is not None:
            dx[ghost] = layers.batch_norm_backward(dy[ghost], cache)[0]
    return y, mean, variance, dx


# (shape, virtual_batch_size, axis): a remainder after whole ghost batches, a batch smaller than one
# ghost batch, a batch of one, and a ghost size that divides the batch
GHOST_CASES = [((10, 3), 4, -1), ((11, 4, 4, 2), 3, -1), ((7, 2, 3), 3, 1), ((2, 3), 4, -1),
               ((1, 3), 4, -1), ((12, 3), 4, -1)]


@pytest.mark.parametrize("shape, v, axis", GHOST_CASES)
@pytest.mark.parametrize("batch_size_known", [True, False])
def test_ghost_batch_norm_normalizes_the_rest_of_an_indivisible_batch_as_one_more_ghost(
        shape, v, axis, batch_size_known):
    x = random_input(shape, seed=2).astype("float32")
    dy = random_input(shape, seed=3)
    expected, mean, variance, dx = ghost_reference(x, v, axis, dy)
    layer = layers.GhostBatchNorm(virtual_batch_size=v, axis=axis, momentum=0.0, center=False,
                                  scale=False)

    def forward_and_gradient(batch):
        with tf.GradientTape() as tape:
            tape.watch(batch)
            y = layer(batch, training=True)
            loss = tf.reduce_sum(y * tf.constant(dy, "float32"))
        return y, tape.gradient(loss, batch)

    signature = [tf.TensorSpec(shape if batch_size_known else (None, *shape[1:]))]
    y, gradient = tf.function(forward_and_gradient, input_signature=signature)(tf.constant(x))
    np.testing.assert_allclose(y, expected, atol=2e-5)
    np.testing.assert_allclose(gradient, dx, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance, variance, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n, batch_size", [(10, 4), (21, 11)])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_ghost_batch_norm_trains_in_fit_on_batches_its_ghost_size_does_not_divide(n, batch_size, jit_compile):
    rng = np.random.default_rng(0)
    x, y = rng.normal(2.0, 3.0, size=(n, 3)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")
    ghost = layers.GhostBatchNorm(virtual_batch_size=4, momentum=0.0)
    model = keras.Sequential([keras.Input((3,)), ghost, keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)  # traced for any batch size
    history = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    last = x[(n - 1) // batch_size * batch_size:]  # 2 examples; 10 = two ghost batches of 4 and 2
    _, mean, variance, _ = ghost_reference(last, 4)
    np.testing.assert_allclose(ghost.moving_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ghost.moving_variance, variance, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("policy", POLICIES)
def test_ghost_batches_match_keras_on_each_ghost_under_dtype_policies(policy):
    x = random_input((8, 4, 4, 3), seed=4).astype("float32") * 100.0
    ghost = layers.GhostBatchNorm(virtual_batch_size=2, momentum=0.5, dtype=policy)
    y = ghost(x, training=True)
    assert dtype_of(y) == keras.mixed_precision.Policy(policy).compute_dtype
    theirs = []
    for j in range(4):  # ghost batch j holds examples j, j + 4 (see the docstring)
        keras_layer = keras.layers.BatchNormalization(momentum=0.5, dtype=policy)
        np.testing.assert_allclose(np.asarray(y[j::4], np.float64),
                                   np.asarray(keras_layer(x[j::4], training=True), np.float64),
                                   **TOLERANCES[policy])
        theirs.append(keras_layer)
    for weight in ("moving_mean", "moving_variance"):
        assert dtype_of(getattr(ghost, weight)) == dtype_of(getattr(theirs[0], weight))
        np.testing.assert_allclose(getattr(ghost, weight),
                                   np.mean([getattr(t, weight) for t in theirs], axis=0),
                                   **VARIABLE_TOLERANCES[policy])


@keras.saving.register_keras_serializable(package="normlab_tests")
def double_and_shift(shape):
    return 2.0, 0.5


def test_adjustment_applies_in_training_only_and_serializes(tmp_path):
    x = random_input((16, 3)).astype("float32")
    layer = layers.AdjustedBatchNorm(adjustment=double_and_shift, momentum=0.0)
    x_hat, _ = layers.batch_norm_forward(x.astype(np.float64))
    np.testing.assert_allclose(layer(x, training=True), 2.0 * x_hat + 0.5, atol=2e-5)
    plain = layers.BatchNorm(momentum=0.0)
    plain(x, training=True)
    np.testing.assert_allclose(layer(x, training=False), plain(x, training=False), atol=1e-6)

    model = keras.Sequential([keras.Input((3,)), layer])
    model.save(tmp_path / "adjusted.keras")
    restored = keras.models.load_model(tmp_path / "adjusted.keras").layers[0]
    assert restored.adjustment is double_and_shift
    with pytest.raises(ValueError, match="adjustment must be a function"):
        layers.AdjustedBatchNorm(adjustment=2.0)


@pytest.mark.parametrize("adjustment, message", [
    (lambda shape: 2.0, r"adjustment must return a \(scale, bias\) pair, got 2.0"),
    (lambda shape: (2.0, 0.5, 0.0), r"adjustment must return a \(scale, bias\) pair, got tuple of 3"),
    (lambda shape: (np.ones(5), 0.0), r"adjustment returned a scale of shape \(5,\), which does not "
                                      r"broadcast to the input's shape \(16, 3\)"),
    (lambda shape: (1.0, np.zeros((2, 16, 3))), r"adjustment returned a bias of shape \(2, 16, 3\)"),
])
def test_adjustment_that_returns_no_pair_or_the_wrong_shapes_is_named(adjustment, message):
    layer = layers.AdjustedBatchNorm(adjustment=adjustment)
    x = random_input((16, 3)).astype("float32")
    with pytest.raises(ValueError, match=message):
        layer(x, training=True)
    model = keras.Sequential([keras.Input((3,)), layer])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=message):  # in fit too, where the batch size is unknown
        model.fit(x, x, batch_size=16, epochs=1, verbose=0)
    layers.AdjustedBatchNorm(adjustment=lambda shape: (np.ones(3), np.zeros((1, 3))))(x, training=True)


def test_noisy_and_weight_standardized_layers_reject_nonsense_arguments_by_name():
    for argument, value in (("mean_range", "0.5"), ("scale_range", float("nan")), ("jitter", -0.1),
                            ("seed", 1.5)):
        with pytest.raises(ValueError, match=f"^{argument} must be"):
            layers.NoisyBatchNorm(**{argument: value})
    for epsilon in (0.0, None, float("nan")):
        with pytest.raises(ValueError, match=r"^epsilon must be"):
            layers.WeightStandardizedConv2D(4, 3, epsilon=epsilon)


def test_adjust_hook_also_reaches_ghost_batches():
    class Shifted(layers.GhostBatchNorm):
        def adjust(self, normalized):
            return normalized + 1.0

    x = random_input((8, 3)).astype("float32")
    shifted = Shifted(virtual_batch_size=4)(x, training=True)
    plain = layers.GhostBatchNorm(virtual_batch_size=4)(x, training=True)
    np.testing.assert_allclose(shifted, np.asarray(plain) + 1.0, atol=1e-6)


@pytest.mark.parametrize("norm", [layers.BatchNorm, keras.layers.BatchNormalization])
def test_precise_batch_norm_averages_batch_statistics_with_frozen_weights(norm):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(96, 4)).astype("float32")
    dense = keras.layers.Dense(3)
    model = keras.Sequential([keras.Input((4,)), dense, norm(momentum=0.99)])
    batches = [x[i:i + 32] for i in range(0, 96, 32)]
    before = [w.copy() for w in model.get_weights()]
    assert layers.precise_batch_norm(model, ((b, None) for b in batches)) == 3
    hidden = [np.asarray(dense(b)) for b in batches]
    bn = model.layers[-1]
    np.testing.assert_allclose(bn.moving_mean, np.mean([h.mean(axis=0) for h in hidden], axis=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance, np.mean([h.var(axis=0) for h in hidden], axis=0),
                               rtol=1e-5)
    assert bn.momentum == 0.99
    for a, b, w in zip(before, model.get_weights(), model.weights, strict=True):
        if w.trainable:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("norm", [layers.BatchNorm, keras.layers.BatchNormalization])
def test_precise_batch_norm_builds_a_layer_that_has_not_seen_an_input(norm):
    batches = [np.random.default_rng(i).normal(2.0, 3.0, (16, 2)).astype("float32") for i in range(4)]
    layer = norm()  # unbuilt: no weights to save before the first batch
    assert layers.precise_batch_norm(layer, iter(batches)) == 4  # a generator: read once
    np.testing.assert_allclose(layer.moving_mean, np.mean([b.mean(axis=0) for b in batches], axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance,
                               np.mean([b.var(axis=0) for b in batches], axis=0), rtol=1e-5)
    assert layer.momentum == 0.99


def test_precise_batch_norm_respects_limits_and_frozen_layers():
    x = random_input((40, 2)).astype("float32")
    frozen, live = keras.layers.BatchNormalization(), keras.layers.BatchNormalization()
    model = keras.Sequential([keras.Input((2,)), live, frozen])
    frozen.trainable = False
    assert layers.precise_batch_norm(model, [x[:10], x[10:20], x[20:]], num_batches=2) == 2
    np.testing.assert_allclose(frozen.moving_mean, 0.0)
    np.testing.assert_allclose(live.moving_mean, x[:20].mean(axis=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least 1"):
        layers.precise_batch_norm(model, [x], num_batches=0)
    with pytest.raises(ValueError, match="empty"):
        layers.precise_batch_norm(model, [])
    for count in (1.5, 2.0, "2", True):  # 1.5 used to run 2 batches
        with pytest.raises(ValueError, match=f"^num_batches must be an int, got {count!r}$"):
            layers.precise_batch_norm(model, [x[:10], x[10:20], x[20:]], num_batches=count)
    assert layers.precise_batch_norm(model, [x[:10], x[10:20]], num_batches=np.int64(2)) == 2
    for wrong in (None, 3, x):  # x: a whole array, not batches of it
        with pytest.raises(ValueError, match=r"^batches must be an iterable of batches"):
            layers.precise_batch_norm(model, wrong)
    with pytest.raises(ValueError, match="no trainable batch-norm layer"):
        layers.precise_batch_norm(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), [x])


def test_precise_batch_norm_says_when_batches_run_out_before_num_batches():
    x = random_input((40, 2)).astype("float32")
    norm = keras.layers.BatchNormalization()
    model = keras.Sequential([keras.Input((2,)), norm])
    batches = [x[i:i + 16] for i in range(0, 40, 16)]  # 3 batches, the last of 8
    with pytest.raises(ValueError, match=r"^asked for num_batches=20 but batches gave only 3; ask for "
                                         r"at most 3, or give more batches$"):
        layers.precise_batch_norm(model, iter(batches), num_batches=20)
    np.testing.assert_array_equal(norm.moving_mean, 0.0)  # left as it was
    np.testing.assert_array_equal(norm.moving_variance, 1.0)
    assert norm.momentum == 0.99
    assert layers.precise_batch_norm(model, batches, num_batches=3) == 3


class DropoutBlock(keras.layers.Layer):
    """A custom layer that keeps a dropout layer in an attribute, as ``model.layers`` does not list."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dropout = keras.layers.Dropout(0.5)

    def call(self, inputs, training=False):
        return self.dropout(inputs, training=training)


@pytest.mark.parametrize("dropout", [lambda: keras.layers.Dropout(0.5), DropoutBlock])
def test_precise_batch_norm_runs_its_passes_with_dropout_off(dropout):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(96, 4)).astype("float32")
    dense, norm = keras.layers.Dense(8), keras.layers.BatchNormalization()
    model = keras.Sequential([keras.Input((4,)), dense, dropout(), norm])
    batches = [x[i:i + 32] for i in range(0, 96, 32)]
    assert layers.precise_batch_norm(model, batches) == 3
    hidden = [np.asarray(dense(b), np.float64) for b in batches]  # what the layer sees at inference
    np.testing.assert_allclose(norm.moving_mean, np.mean([h.mean(axis=0) for h in hidden], axis=0),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance, np.mean([h.var(axis=0) for h in hidden], axis=0),
                               rtol=1e-5)
    assert [layer.rate for layer in model._flatten_layers() if isinstance(layer, keras.layers.Dropout)] \
        == [0.5]  # put back


class TwoNormBlock(keras.layers.Layer):
    """A custom layer that keeps its batch norms in attributes, one of them in a dict."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)
        self.norm = layers.BatchNorm(momentum=0.9)
        self.more = {"keras": keras.layers.BatchNormalization(momentum=0.9)}

    def call(self, inputs, training=False):
        h = self.dense(inputs)
        return keras.ops.concatenate([self.norm(h, training=training),
                                      self.more["keras"](h, training=training)], axis=-1)


def test_precise_batch_norm_finds_layers_nested_in_custom_layers():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(60, 4)).astype("float32")
    block = TwoNormBlock()
    model = keras.Sequential([keras.Input((4,)), block])
    batches = [x[i:i + 20] * (1 + i // 20) for i in range(0, 60, 20)]  # batches of unlike spread
    assert layers.precise_batch_norm(model, batches) == 3
    hidden = [np.asarray(block.dense(b), np.float64) for b in batches]
    for norm in (block.norm, block.more["keras"]):
        np.testing.assert_allclose(norm.moving_mean, np.mean([h.mean(axis=0) for h in hidden], axis=0),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(norm.moving_variance,
                                   np.mean([h.var(axis=0) for h in hidden], axis=0), rtol=1e-5)
        assert norm.momentum == 0.9


def test_precise_batch_norm_sets_what_a_renorm_layer_reads_at_inference():
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, size=(90, 4)).astype("float32")
    dense = keras.layers.Dense(3)
    norm = keras.layers.BatchNormalization(renorm=True, momentum=0.9, renorm_momentum=0.5)
    model = keras.Sequential([keras.Input((4,)), dense, norm])
    norm.gamma.assign([0.5, 1.0, 2.0])
    norm.beta.assign([-1.0, 0.0, 1.0])
    model(x[:30], training=True)  # renorm statistics that are not their initial values
    renorm_state = [norm.renorm_mean.numpy(), norm.renorm_stddev.numpy()]
    # batches of very unlike spread: the average of standard deviations is not that of variances
    batches = [x[i:i + 30] * (1 + 2 * (i // 30)) for i in range(0, 90, 30)]
    assert layers.precise_batch_norm(model, batches) == 3
    hidden = [np.asarray(dense(b), np.float64) for b in batches]
    mean = np.mean([h.mean(axis=0) for h in hidden], axis=0)
    variance = np.mean([h.var(axis=0) for h in hidden], axis=0)
    h = np.asarray(dense(x), np.float64)
    expected = (h - mean) / np.sqrt(variance + norm.epsilon) * norm.gamma.numpy() + norm.beta.numpy()
    np.testing.assert_allclose(model(x, training=False), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.moving_stddev, np.sqrt(variance + norm.epsilon), rtol=1e-6)
    np.testing.assert_array_equal(norm.renorm_mean, renorm_state[0])  # training-only: untouched
    np.testing.assert_array_equal(norm.renorm_stddev, renorm_state[1])
    assert norm.momentum == 0.9


# (shape, computation): TensorFlow's kernel where channels fill CPU vector registers (multiples of 8)
# on a conv map or 256 features, else packed rows (8 positions of 4 channels, 2 of 20, 1 of 120,
# and 1 of 5 where 63 examples cannot be split evenly)
FUSED_CASES = [((16, 5, 5, 8), "kernel"), ((16, 256), "kernel"), ((16, 5, 5, 4), "packed"),
               ((64, 20), "packed"), ((64, 120), "packed"), ((63, 5), "packed"), ((32, 5, 5, 3), "packed")]


@pytest.mark.parametrize("shape, computation", FUSED_CASES)
def test_fused_batch_norm_matches_keras_in_outputs_gradients_and_statistics(shape, computation):
    x = tf.constant(random_input(shape).astype("float32"))
    channels = shape[-1]
    assert layers.FusedBatchNorm._fused_kernel(x) == (computation == "kernel")
    ours, theirs = layers.FusedBatchNorm(momentum=0.8), keras_bn(x.numpy(), -1, momentum=0.8)
    ours.build(x.shape)
    weights = [np.linspace(0.5, 2.0, channels), np.linspace(-1, 1, channels), np.zeros(channels),
               np.ones(channels)]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    for _ in range(3):
        grads = []
        for layer in (ours, theirs):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(tf.sin(y))
            grads.append([y, *tape.gradient(loss, [x, layer.gamma, layer.beta])])
        for a, b in zip(*grads, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=1e-6)  # biased
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=1e-5)


def test_fused_batch_norm_trains_and_saves_like_keras(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 64)
    ours = build_model(layers.FusedBatchNorm(center=False), seed=0)
    theirs = build_model(keras.layers.BatchNormalization(center=False), seed=0)
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    ours.save(tmp_path / "fused.keras")
    restored = keras.models.load_model(tmp_path / "fused.keras")
    assert isinstance(restored.layers[1], layers.FusedBatchNorm)
    assert restored.layers[1].get_config() == ours.layers[1].get_config()
    np.testing.assert_allclose(restored.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-5)


def test_packed_rows_fill_vector_registers_and_divide_every_batch():
    assert layers._packing((256, 28, 28, 6)) == 8  # rows of 48 values
    assert layers._packing((None, 28, 28, 6)) == 8  # 784 positions per example: any batch size
    assert layers._packing((None, 120)) == layers._packing((256, 84)) == 1  # already wide
    assert layers._packing((256, 5)) == 8 and layers._packing((None, 5)) == 1
    assert layers._packing((6, 5)) == 2 and layers._packing((None, 3, 3, 5)) == 1


def test_fused_batch_norm_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match=r"channels-last inputs, \(N, H, W, C\) or \(N, C\)"):
        layers.FusedBatchNorm()(np.ones((4, 3, 2), "float32"))
    with pytest.raises(ValueError, match="channels-last inputs"):
        layers.FusedBatchNorm(axis=1)(np.ones((2, 3, 4, 4), "float32"))
    with pytest.raises(ValueError, match=r"epsilon >= 1\.001e-5"):
        layers.FusedBatchNorm(epsilon=1e-6)


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("channels", [3, 8])  # FusedBatchNorm: packed rows, TensorFlow's kernel
def test_layers_match_keras_under_dtype_policies(name, policy, training, channels):
    # values of a few hundred: their float16 variance would overflow (float16 stops at 65504)
    x = random_input((8, 4, 4, channels)).astype("float32") * 100.0
    ours = make_norm(name, momentum=0.8, dtype=policy)
    theirs = keras.layers.BatchNormalization(momentum=0.8, dtype=policy)
    rng = np.random.default_rng(5)
    weights = [rng.uniform(0.5, 2.0, channels), rng.normal(size=channels), rng.normal(size=channels),
               rng.uniform(0.5, 2.0, channels)]
    for layer in (ours, theirs):
        layer.build(x.shape)
        for variable, value in zip(layer.weights, weights, strict=False):  # renorm: steps aside
            variable.assign(value)
    assert [dtype_of(w) for w in ours.weights[:4]] == [dtype_of(w) for w in theirs.weights]
    for _ in range(2):
        y, expected = ours(x, training=training), theirs(x, training=training)
        assert dtype_of(y) == dtype_of(expected) == keras.mixed_precision.Policy(policy).compute_dtype
        np.testing.assert_allclose(np.asarray(y, np.float64), np.asarray(expected, np.float64),
                                   **TOLERANCES[policy])
    for weight in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(getattr(ours, weight), getattr(theirs, weight),
                                   **VARIABLE_TOLERANCES[policy])


def train_briefly(model, x, y, loop):
    """Two epochs of ``fit``, or two steps of a ``GradientTape`` loop, of SGD on 16-example batches."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if loop == "fit":
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss_fn, jit_compile=False)
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return
    optimizer = keras.optimizers.SGD(0.1)
    for start in (0, 16):
        with tf.GradientTape() as tape:
            logits = model(x[start:start + 16], training=True)
            loss = loss_fn(y[start:start + 16], tf.cast(logits, "float32"))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("loop", ["fit", "tape"])
def test_layers_train_like_keras_under_global_dtype_policies(name, policy, loop, set_dtype_policy):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 32)
    set_dtype_policy(policy)
    ours = build_model(make_norm(name, batch_size=16), seed=0)
    theirs = build_model(keras.layers.BatchNormalization(), seed=0)
    shared = [w for w in ours.weights if w.name not in ("steps", "clipped")]  # renorm's counts aside
    theirs.set_weights([w.numpy() for w in shared])
    for model in (ours, theirs):
        train_briefly(model, x, y, loop)
    assert dtype_of(ours.layers[1].moving_mean) == dtype_of(theirs.layers[1].moving_mean)
    assert not np.allclose(ours.layers[1].moving_mean, 0.0)  # the statistics really moved
    for a, b in zip(shared, theirs.weights, strict=True):
        np.testing.assert_allclose(a, b, **VARIABLE_TOLERANCES[policy])
    np.testing.assert_allclose(np.asarray(ours.predict(x, verbose=0), np.float64),
                               np.asarray(theirs.predict(x, verbose=0), np.float64), **TOLERANCES[policy])


def test_noisy_batch_norm_is_keras_batch_norm_at_inference_and_without_noise():
    x = np.random.default_rng(0).normal(2.0, 3.0, (16, 4, 4, 3)).astype("float32")
    keras_bn, noisy = keras.layers.BatchNormalization(), layers.NoisyBatchNorm()
    quiet = layers.NoisyBatchNorm(mean_range=0.0, scale_range=0.0, jitter=0.0)
    for layer in (keras_bn, noisy, quiet):
        layer.build(x.shape)
    np.testing.assert_allclose(noisy(x, training=False), keras_bn(x, training=False), atol=1e-6)
    np.testing.assert_allclose(quiet(x, training=True), keras_bn(x, training=True), atol=1e-5)


def test_noisy_batch_norm_moves_the_distribution_at_every_step_within_its_ranges():
    x = np.random.default_rng(1).normal(size=(64, 8, 8, 4)).astype("float32")
    layer = layers.NoisyBatchNorm(seed=3)
    clean = np.asarray(keras.layers.BatchNormalization()(x, training=True))
    steps = [np.asarray(layer(x, training=True)) for _ in range(20)]
    means = np.array([y.mean() for y in steps])
    scales = np.array([np.polyfit(clean.ravel(), y.ravel(), 1)[0] for y in steps])
    assert np.all(np.abs(means) < 0.5 + 0.02) and means.std() > 0.1
    assert np.all((scales > 1.0 - 0.02) & (scales < 1.25 + 0.02)) and scales.std() > 0.02


def test_noisy_batch_norm_config_round_trip():
    layer = layers.NoisyBatchNorm(mean_range=0.3, scale_range=0.1, jitter=0.05, seed=7, momentum=0.9)
    clone = layers.NoisyBatchNorm.from_config(layer.get_config())
    assert (clone.mean_range, clone.scale_range, clone.jitter, clone.seed, clone.momentum) == (
        0.3, 0.1, 0.05, 7, 0.9)


def test_batch_renorm_warms_up_as_batch_norm_then_follows_its_schedule():
    x = random_input((16, 4, 4, 3)).astype("float32")
    renorm, plain = layers.BatchRenorm(warmup_steps=2, rmax_steps=6, dmax_steps=4), layers.BatchNorm()
    bounds = []
    for _ in range(2):
        np.testing.assert_allclose(renorm(x, training=True), plain(x, training=True), atol=1e-5)
        bounds.append([float(b) for b in renorm.clipping()])
    for _ in range(4):
        renorm(x, training=True)
        bounds.append([float(b) for b in renorm.clipping()])
    assert bounds[0] == [1.0, 0.0]
    assert bounds[2] == [1.5, 2.5] and bounds[-1] == [3.0, 5.0]  # step 3 of ramps to 6 and 4


@pytest.mark.parametrize("policy", POLICIES)
def test_batch_renorm_with_fixed_bounds_matches_keras_renorm_under_dtype_policies(policy):
    # a first step from moving statistics 0 and 1, far from the batch's: r and d are clipped
    x = random_input((32, 5, 5, 4)).astype("float32")
    ours = layers.BatchRenorm(rmax=3.0, dmax=5.0, epsilon=1e-6, dtype=policy)
    theirs = keras.layers.BatchNormalization(
        renorm=True, renorm_clipping={"rmax": 3.0, "rmin": 1 / 3, "dmax": 5.0}, epsilon=1e-6,
        dtype=policy)
    y, expected = ours(x, training=True), theirs(x, training=True)
    assert dtype_of(y) == dtype_of(expected) == keras.mixed_precision.Policy(policy).compute_dtype
    assert dtype_of(ours.steps) == dtype_of(ours.moving_mean) == dtype_of(theirs.moving_mean)
    # Keras's renorm starts its stddev at 1, not sqrt(1 + epsilon): a 5e-7 difference in r
    tolerance = TOLERANCES[policy] if "16" in policy else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(y, np.float64), np.asarray(expected, np.float64), **tolerance)


def test_batch_renorm_counts_steps_past_float16_precision_under_mixed_float16(set_dtype_policy):
    set_dtype_policy("mixed_float16")
    layer = layers.BatchRenorm(warmup_steps=2049, rmax_steps=4097)
    layer.build((4, 3))
    layer.steps.assign(2049.0)  # float16 would read 2048 + 1 as 2048
    layer(np.ones((4, 3), "float32"), training=True)
    assert float(layer.steps) == 2050.0 and float(layer.clipping()[0]) == 1.0 + 2.0 / 2048


@pytest.mark.parametrize("bad, message", [
    (dict(rmax=0.5), "rmax must be >= 1"), (dict(dmax=-1.0), "dmax must be >= 0"),
    (dict(rmax=float("nan")), "rmax must be a finite"), (dict(dmax="5"), "dmax must be a finite"),
    (dict(warmup_steps=1.5), "warmup_steps must be an int"),
    (dict(rmax_steps=-1), "rmax_steps must be >= 0"), (dict(dmax_steps=None), "dmax_steps must be an int"),
])
def test_batch_renorm_rejects_bounds_and_schedules_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        layers.BatchRenorm(**bad)


def test_batch_renorm_counts_the_share_of_clipped_corrections_after_its_warm_up():
    rng = np.random.default_rng(2)
    layer = layers.BatchRenorm(rmax=1.5, dmax=0.5, warmup_steps=1, momentum=0.0)
    layer(rng.normal(size=(64, 2)).astype("float32"), training=True)  # the warm-up: not counted
    assert np.isnan(layer.clipped_fractions()).all()  # no step after the warm-up yet
    # momentum 0: the moving statistics are the last batch's, mean 0 and variance 1 per channel
    x = np.stack([rng.normal(0.0, 1.0, 64), rng.normal(3.0, 4.0, 64)], axis=1).astype("float32")
    layer(x, training=True)  # channel 1: r about 4 > 1.5 and d about 3 > 0.5; channel 0 neither
    layer(x, training=True)  # the same batch again: nothing to correct
    assert layer.clipped_fractions() == (0.25, 0.25)  # one channel of two, in one step of two
    model = keras.Sequential([keras.Input((2,)), layer, keras.layers.Dense(1)])
    assert layers.renorm_clipping(model) == {"r_clipped": [0.25], "d_clipped": [0.25]}


def test_weight_standardized_conv_equals_conv_with_the_standardized_kernel():
    x = random_input((2, 6, 6, 3)).astype("float32")
    ws = layers.WeightStandardizedConv2D(4, 3, use_bias=False)
    y = ws(x).numpy()
    kernel = ws.kernel.numpy()
    standardized = (kernel - kernel.mean((0, 1, 2))) / np.sqrt(kernel.var((0, 1, 2)) + 1e-5)
    conv = keras.layers.Conv2D(4, 3, use_bias=False)
    conv.build(x.shape)
    conv.kernel.assign(standardized)
    np.testing.assert_allclose(y, conv(x).numpy(), atol=1e-4)
