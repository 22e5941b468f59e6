import json

import numpy as np
import pytest

from normlab import data, fingerprint, layers, runtime, train

tf, keras = runtime.import_tensorflow()


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (40, 12, 12, 1), dtype=np.uint8)
    y_train = rng.integers(0, 10, 40)
    x_test = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)
    return data.Dataset("fashion_mnist", x_train, y_train, x_test, rng.integers(0, 10, 16), "test")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(train.CACHE_VARIABLE, str(tmp_path / "runs"))
    return tmp_path / "runs"


CONFIG = train.RunConfig(inputs="standardized", epochs=2, batch_size=16).but(norm="batch")


def test_a_run_records_the_history_and_the_time_of_each_epoch(tiny):
    record = train.run(CONFIG, tiny)
    assert record.config == CONFIG and record.dataset == "Fashion-MNIST"
    assert set(record.history) == {"loss", "acc", "val_loss", "val_acc"}
    assert all(len(values) == 2 for values in record.history.values())
    assert len(record.train_seconds) == 2 and min(record.train_seconds) > 0
    assert record.device.startswith("TensorFlow") and "cores" in record.machine


def test_the_same_config_is_read_from_the_cache_not_retrained(tiny, cache, monkeypatch):
    first = train.run(CONFIG, tiny)
    assert len(list(cache.glob("*.json"))) == len(list(cache.glob("*.weights.h5"))) == 1
    monkeypatch.setattr(train, "_train", lambda *args: pytest.fail("retrained a cached run"))
    assert train.run(CONFIG, tiny) == first
    train.trained_model(CONFIG, tiny)


def test_the_trained_model_is_the_one_the_record_describes(tiny):
    """Weights and moving statistics come back from the cache: the final validation accuracy of
    the rebuilt model is the record's."""
    for config in (CONFIG, CONFIG.but(model="small_cnn", inputs="scaled", momentum=0.9)):
        record = train.run(config, tiny)
        model = train.trained_model(config, tiny)
        accuracy = model.evaluate(tiny.x_test.astype("float32"), tiny.y_test, verbose=0)[1]
        assert accuracy == pytest.approx(record.history["val_acc"][-1], abs=1e-6)
        assert model.count_params() == train._build(config, tiny).count_params()


@pytest.mark.parametrize("inputs", ["raw", "scaled", "standardized", "per_image"])
def test_each_input_option_does_what_it_says_to_the_pixels(tiny, inputs):
    model = train.trained_model(CONFIG.but(inputs=inputs, epochs=1), tiny)
    x = tiny.x_train.astype("float32")
    if inputs == "raw":
        assert model.layers[0].name == "conv1"
        return
    first = np.asarray(model.get_layer("input_normalization")(x))
    if inputs == "scaled":
        np.testing.assert_allclose(first, x / 255, rtol=1e-6)
    elif inputs == "standardized":  # per channel, over the training images
        np.testing.assert_allclose(first.mean(), 0, atol=1e-3)
        np.testing.assert_allclose(first.std(), 1, atol=1e-2)
    else:  # each image by its own mean and std
        np.testing.assert_allclose(first.reshape(len(x), -1).mean(axis=1), 0, atol=1e-3)
        np.testing.assert_allclose(first.reshape(len(x), -1).std(axis=1), 1, atol=1e-2)


def test_batch_statistics_outputs_normalize_each_batch_by_itself_and_restore_the_model(tiny):
    model = train.trained_model(CONFIG.but(dropout=0.5), tiny)
    state = [v.numpy() for v in model.non_trainable_variables]
    x = tiny.x_test.astype("float32")
    outputs = train.batch_statistics_outputs(model, x, batch_size=5)
    assert outputs.shape == (16, 10)
    for v, before in zip(model.non_trainable_variables, state, strict=True):
        np.testing.assert_array_equal(v.numpy(), before)
    second_batch = train.batch_statistics_outputs(model, x[5:10], batch_size=5)
    np.testing.assert_allclose(outputs[5:10], second_batch, atol=1e-5)  # its own batch only
    assert not np.allclose(outputs, model.predict(x, verbose=0), atol=1e-3)  # not the moving ones


def test_precise_bn_val_acc_uses_every_batch_a_small_training_set_gives_and_restores_the_model(tiny):
    rng = np.random.default_rng(1)  # 600 images: 3 batches of 256, the last partial, not 20
    subset = data.Dataset("fashion_mnist", rng.integers(0, 256, (600, 12, 12, 1), dtype=np.uint8),
                          rng.integers(0, 10, 600), tiny.x_test, tiny.y_test, "test")
    model = train.trained_model(CONFIG.but(dropout=0.5), tiny)
    state = [v.numpy() for v in model.non_trainable_variables]
    accuracy = train.precise_bn_val_acc(model, subset, CONFIG)
    for v, before in zip(model.non_trainable_variables, state, strict=True):
        np.testing.assert_array_equal(v.numpy(), before)
    batches = data.pipeline(subset.x_train, subset.y_train, 256, shuffle_seed=0)
    assert layers.precise_batch_norm(model, batches) == 3
    predicted = np.argmax(model.predict(subset.x_test.astype("float32"), verbose=0), axis=-1)
    assert accuracy == pytest.approx(np.mean(predicted == subset.y_test))


def test_the_cache_key_changes_with_the_config_and_the_data_but_not_with_docstrings(tiny):
    key = train.cache_key(CONFIG, tiny)
    assert train.cache_key(CONFIG.but(seed=1), tiny) != key
    assert train.cache_key(CONFIG, tiny.subsample(30)) != key
    assert train.cache_key(CONFIG.but(optimizer="sgd"), tiny) != key
    assert train.cache_key(CONFIG.but(dropout=0.5), tiny) != key
    assert train.cache_key(CONFIG.but(probes=("precise_bn_val_acc",)), tiny) != key
    same_size = data.Dataset("fashion_mnist", tiny.x_train[::-1], tiny.y_train[::-1], tiny.x_test,
                             tiny.y_test, "test")
    assert train.cache_key(CONFIG, same_size) != key  # the data enters by contents, not shape
    assert train.cache_key(train.RunConfig(**json.loads(json.dumps(CONFIG.to_dict()))), tiny) == key


def test_the_key_covers_the_code_that_trains_not_the_lists_of_choices():
    """A new model or probe in normlab must not retrain every cached run."""
    covered = set(fingerprint.reached("train._train", "models.lenet5"))
    assert {"train._train", "models.lenet5", "layers.FusedBatchNorm", "data.pipeline"} <= covered
    assert not covered & {"models.BUILDERS", "models.small_cnn", "train.PROBES", "train.RunConfig",
                          "train.Record", "train.precise_bn_val_acc"}


def test_the_key_does_not_reread_the_source_files(tiny, monkeypatch):
    """Editing a file while a chapter trains must not change the keys of the runs still to come."""
    key = train.cache_key(CONFIG, tiny)
    monkeypatch.setattr(fingerprint.Path, "read_text", lambda *a: pytest.fail("read the sources again"))
    assert train.cache_key(CONFIG, tiny) == key


def test_seeds_make_runs_repeatable_and_different(tiny, cache):
    a, b = train.repeat(CONFIG, tiny, seeds=[0, 1])
    for path in cache.glob("*.json"):
        path.unlink()
    again = train.run(CONFIG.but(seed=0), tiny)
    np.testing.assert_allclose(again.history["loss"], a.history["loss"], rtol=1e-5)
    assert a.history["loss"] != b.history["loss"]


def test_metric_stacks_records_into_one_row_per_run(tiny):
    records = train.repeat(CONFIG, tiny, seeds=[0, 1, 2])
    assert train.metric(records, "val_acc").shape == (3, 2)
    assert train.metric(records, "train_seconds").shape == (3, 2)
    with pytest.raises(KeyError):
        train.metric(records, "accuracy")


def test_configs_refuse_unknown_models_options_optimizers_and_probes():
    with pytest.raises(ValueError, match="unknown model"):
        train.RunConfig(model="resnet1000")
    with pytest.raises(ValueError, match="takes no argument widht"):
        CONFIG.but(widht=3)
    with pytest.raises(ValueError, match="unknown inputs 'normalized'"):
        CONFIG.but(inputs="normalized")
    with pytest.raises(ValueError, match="unknown optimizer"):
        CONFIG.but(optimizer="adagrad")
    with pytest.raises(ValueError, match="unknown probe"):
        CONFIG.but(probes=("magic",))
    with pytest.raises(ValueError, match="probe_every must be a positive"):
        CONFIG.but(probe_every=0, probes=("accuracy",))
    with pytest.raises(ValueError, match="probe_every must be a positive"):
        CONFIG.but(probe_every=5)
    with pytest.raises(ValueError, match="one value per layer"):
        CONFIG.but(probes=("gradient_norm",))
    assert CONFIG.but(norm="layer", epochs=3).options == {"norm": "layer"}


def test_probes_are_recorded_per_epoch_and_leave_the_training_alone(tiny):
    per_epoch = ("precise_bn_val_acc", "batch_stats_val_acc", "variance_shift", "accuracy")
    probed = train.run(CONFIG.but(dropout=0.5, probes=per_epoch), tiny)
    plain = train.run(CONFIG.but(dropout=0.5), tiny)
    assert set(probed.probes) == set(per_epoch)
    assert all(len(values) == CONFIG.epochs for values in probed.probes.values())
    assert all(0 <= v <= 1 for v in probed.metric("precise_bn_val_acc"))
    assert probed.metric("variance_shift")[-1] > 1.2  # dropout raises the training-time variance
    head = train.run(CONFIG.but(dropout=0.5, dropout_at="head", probes=("variance_shift",)), tiny)
    np.testing.assert_allclose(head.metric("variance_shift"), 1.0, rtol=1e-5)  # none before norm4
    np.testing.assert_allclose(probed.history["loss"], plain.history["loss"], rtol=1e-5)


def test_a_run_evaluated_at_the_last_epoch_trains_the_same_and_validates_once(tiny):
    config = CONFIG.but(epochs=3, probes=("precise_bn_val_acc",))
    every, last = train.run(config, tiny), train.run(config.but(evaluate="last_epoch"), tiny)
    assert "evaluate" not in config.to_dict() and last.config.to_dict()["evaluate"] == "last_epoch"
    assert len(every.history["val_acc"]) == 3 and len(last.history["val_acc"]) == 1
    assert len(last.probes["precise_bn_val_acc"]) == 1 and len(last.train_seconds) == 3
    np.testing.assert_allclose(last.history["loss"], every.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(last.metric("val_acc")[-1], every.metric("val_acc")[-1], atol=1e-6)
    np.testing.assert_allclose(last.metric("precise_bn_val_acc"), every.metric("precise_bn_val_acc")[-1:],
                               atol=1e-6)
    with pytest.raises(ValueError, match="unknown evaluate 'never'"):
        config.but(evaluate="never")


def test_several_steps_per_call_train_as_one_step_per_call(tiny, tmp_path, monkeypatch):
    config = CONFIG.but(batch_size=4, epochs=2)  # 10 steps an epoch: one call of 8, one of 2
    batched = train.run(config, tiny)
    monkeypatch.setattr(train, "STEPS_PER_EXECUTION", 1)
    monkeypatch.setenv(train.CACHE_VARIABLE, str(tmp_path / "one_step"))
    single = train.run(config, tiny)
    for name in ("loss", "acc", "val_loss", "val_acc"):
        np.testing.assert_allclose(batched.history[name], single.history[name], rtol=1e-4, atol=1e-6)


def test_sgd_and_a_sigmoid_output_train(tiny):
    record = train.run(CONFIG.but(optimizer="sgd", learning_rate=0.01, output="sigmoid"), tiny)
    assert np.all(np.isfinite(record.history["loss"]))


def test_probes_every_few_steps_record_lists_from_the_first_step_on(tiny):
    config = train.RunConfig(model="resnet", options={"depth": 8, "width": 4}, inputs="scaled",
                             epochs=2, batch_size=8, probe_every=2,
                             probes=("response_std", "gradient_norm"))
    record = train.run(config, tiny)
    steps = 2 * len(tiny.x_train) // 8  # 5 steps per epoch
    assert [len(record.probes[name]) for name in config.probes] == [1 + steps // 2] * 2
    stds = record.metric("response_std")
    assert stds.shape == (1 + steps // 2, 7)  # 7 response layers: the convs' batch norms
    np.testing.assert_allclose(stds[0], 1.0, atol=0.01)  # batch norm at initialization
    assert record.metric("gradient_norm").shape == (1 + steps // 2, 8)
    plain = train.run(config.but(probes=(), probe_every=None), tiny)
    np.testing.assert_allclose(record.history["loss"], plain.history["loss"], rtol=1e-5)
    assert len(record.train_seconds) == 2


def test_an_unused_probe_every_leaves_the_config_and_its_key_as_they_were(tiny):
    assert "probe_every" not in CONFIG.to_dict()
    traced = CONFIG.but(probe_every=3, probes=("accuracy",))
    assert traced.to_dict()["probe_every"] == 3
    assert train.cache_key(traced, tiny) != train.cache_key(traced.but(probe_every=None), tiny)
    assert train.Record.from_dict(train.run(traced, tiny).to_dict()).config == traced


def test_adaptive_clipping_limits_each_units_step_to_a_fraction_of_its_weights():
    variable = keras.Variable(np.array([[1.0, 0.0], [0.0, 2.0]], "float32"))
    optimizer = train.AdaptiveClippingSGD(clipping=0.1, learning_rate=1.0)
    optimizer.apply([np.array([[10.0, 0.0], [0.0, 0.01]], "float32")], [variable])
    # unit 0: |G| = 10 > 0.1 * |W| = 0.1, clipped to 0.1; unit 1: |G| = 0.01 < 0.2, unchanged
    np.testing.assert_allclose(variable.numpy(), [[0.9, 0.0], [0.0, 1.99]], atol=1e-6)


def test_adaptive_clipping_clips_a_bias_by_its_whole_norm_and_leaves_named_layers_alone():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="hidden"),
                              keras.layers.Dense(2, name="logits")])
    for layer in model.layers:
        layer.set_weights([np.eye(2, dtype="float32"), np.array([3.0, 4.0], "float32")])
    optimizer = train.AdaptiveClippingSGD(clipping=0.1, learning_rate=1.0, unclipped=["logits"])
    gradient = [np.zeros((2, 2), "float32"), np.array([10.0, 0.0], "float32")]
    optimizer.apply(gradient * 2, model.trainable_variables)
    # the bias's norm is 5: its gradient is cut to 0.5 as a whole, not to 0.3 and 0 per entry
    np.testing.assert_allclose(model.layers[0].bias.numpy(), [2.5, 4.0], atol=1e-6)
    np.testing.assert_allclose(model.layers[1].bias.numpy(), [-7.0, 4.0], atol=1e-6)  # unclipped
    with pytest.raises(ValueError, match="list of layer names"):
        train.AdaptiveClippingSGD(unclipped="logits")


def dense_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 3, 64)


def test_fit_seeds_returns_a_row_per_seed(points):
    histories = train.fit_seeds(dense_model, points, points, [0, 1], epochs=2, batch_size=16)
    assert histories["val_acc"].shape == (2, 2)
    assert not np.array_equal(histories["loss"][0], histories["loss"][1])


def test_fit_seeds_reads_each_seed_from_the_cache(points, cache, monkeypatch):
    first = train.fit_seeds(dense_model, points, points, [0, 1], epochs=2, batch_size=16)
    assert len(list((cache / "fit").glob("*.json"))) == 2
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: pytest.fail("retrained a cached run"))
    again = train.fit_seeds(dense_model, points, points, [1, 0], epochs=2, batch_size=16)
    np.testing.assert_array_equal(again["loss"], first["loss"][::-1])


def test_fit_seeds_evaluates_at_the_last_epoch_only_when_asked(points):
    histories = train.fit_seeds(dense_model, points, points, [0], epochs=3, batch_size=16,
                                evaluate="last_epoch")
    assert histories["loss"].shape == (1, 3) and histories["val_acc"].shape == (1, 1)
    with pytest.raises(ValueError, match="unknown evaluate"):
        train.fit_seeds(dense_model, points, points, [0], epochs=1, evaluate="never")


def test_fit_seeds_keeps_what_a_normlab_function_measures_after_training(points):
    def build():
        return keras.Sequential([keras.Input((4,)), layers.BatchRenorm(warmup_steps=1),
                                 keras.layers.Dense(3)])

    histories = train.fit_seeds(build, points, points, [0, 1], epochs=1, batch_size=16,
                                after=layers.renorm_clipping)
    assert histories["r_clipped"].shape == histories["d_clipped"].shape == (2, 1)
    assert np.all((histories["r_clipped"] >= 0) & (histories["r_clipped"] <= 1))
    with pytest.raises(ValueError, match="a function of a normlab module"):
        train.fit_seeds(build, points, points, [0], epochs=1, after=lambda model: {})


def test_the_fit_key_follows_the_model_the_data_the_batches_and_the_optimizer(points):
    x, y = points

    def key(build=dense_model, optimizer=lambda: keras.optimizers.Adam(1e-3), x=x, size=16, seed=0,
            epochs=2):
        runtime.set_seed(0)
        model = build()
        model.compile(optimizer=optimizer(), loss="mse")
        batches = fingerprint.batches(data.pipeline(x, y, size, shuffle_seed=seed))
        return train._fit_key(model, batches, points, epochs, "every_epoch")

    base = key()
    assert key() == base
    changed = [
        key(build=lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False)])),
        key(optimizer=lambda: keras.optimizers.Adam(1e-2)),
        key(optimizer=lambda: train.AdaptiveClippingSGD(clipping=0.1)),
        key(x=x + 1), key(size=32), key(seed=1), key(epochs=3),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_the_short_run_rule_picks_precise_bn_until_the_moving_averages_settle():
    config = train.RunConfig(epochs=5, batch_size=256).but(norm="batch")
    assert train.training_steps(config, 10_000) == 5 * 40  # the last batch of an epoch is partial
    assert not train.moving_averages_settled(299) and train.moving_averages_settled(300)
    assert 0.049 < 0.99**300 < 0.05  # three time constants leave about e**-3 = 5 %
    assert train.moving_averages_settled(30, momentum=0.9)
    with pytest.raises(ValueError, match="add the probe precise_bn_val_acc"):
        train.bn_accuracy_metric(config, 10_000)
    precise = config.but(probes=("precise_bn_val_acc",))
    assert train.bn_accuracy_metric(precise, 10_000) == "precise_bn_val_acc"
    assert train.bn_accuracy_metric(precise, 60_000) == "val_acc"  # 1,175 steps


def test_the_mechanism_probes_count_dead_relus_and_the_gradients_norm(tiny):
    record = train.run(CONFIG.but(probes=("dead_relu_fraction", "total_gradient_norm")), tiny)
    assert 0 <= record.metric("dead_relu_fraction")[-1] <= 1
    assert record.metric("total_gradient_norm")[-1] > 0
    model = train.trained_model(CONFIG, tiny)
    for layer in model.layers:  # a network whose every unit is silenced: all ReLUs are dead
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(np.zeros(layer.gamma.shape))
            layer.beta.assign(-np.ones(layer.beta.shape))
    assert train.PROBES["dead_relu_fraction"](model, tiny, CONFIG) == 1.0
    layer = model.get_layer("fc1")
    layer.kernel.assign(np.full(layer.kernel.shape, np.nan, dtype="float32"))
    assert np.isnan(train.PROBES["dead_relu_fraction"](model, tiny, CONFIG))
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no ReLU layer"):
        train.PROBES["dead_relu_fraction"](plain, tiny, CONFIG)


def test_a_schedule_warms_up_at_a_tenth_then_divides_by_ten_at_each_decay_step(tiny):
    config = train.RunConfig(optimizer="sgd", learning_rate=0.1, probes=("accuracy",),
                             probe_every=5, warmup_steps=2, decay_steps=(4, 6))
    rates = [train.learning_rate(config, step) for step in range(8)]
    np.testing.assert_allclose(rates, [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert "warmup_steps" not in CONFIG.to_dict() and "decay_steps" not in CONFIG.to_dict()
    with pytest.raises(ValueError, match="probe_every"):
        train.RunConfig(warmup_steps=2)
    with pytest.raises(ValueError, match="increasing"):
        config.but(decay_steps=(6, 4))
    with pytest.raises(ValueError, match="increasing"):
        config.but(warmup_steps=4, decay_steps=(4,))


def test_a_scheduled_run_steps_at_the_schedules_rate(tiny, monkeypatch):
    def rate(model, subset, config):  # the rate the optimizer will take its next step at
        return float(model.optimizer.learning_rate)

    rate.__module__ = "normlab.train"  # the cache key names a probe by its module
    monkeypatch.setitem(train.PROBES, "rate", rate)
    config = train.RunConfig(model="resnet", options={"depth": 8, "width": 4, "norm": "none"},
                             inputs="scaled", optimizer="sgd", learning_rate=0.1, epochs=1,
                             batch_size=8, probes=("rate", "update_ratio"), probe_every=1,
                             warmup_steps=2, decay_steps=(4,))
    record = train.run(config, tiny)  # 5 steps: measured before each, then after the last
    np.testing.assert_allclose(record.metric("rate"), [0.01, 0.01, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
    assert record.metric("update_ratio").shape == (6, 8)
