import json

import numpy as np
import pytest

from normlab import data, fingerprint, runtime, train

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


CONFIG = train.RunConfig(normalize_inputs=True, epochs=2, batch_size=16).but(norm="batch")


def test_a_run_records_the_history_and_the_time_of_each_epoch(tiny):
    record = train.run(CONFIG, tiny)
    assert record.config == CONFIG and record.dataset == "Fashion-MNIST"
    assert set(record.history) == {"loss", "acc", "val_loss", "val_acc"}
    assert all(len(values) == 2 for values in record.history.values())
    assert len(record.train_seconds) == 2 and min(record.train_seconds) > 0
    assert record.device.startswith("TensorFlow") and "cores" in record.machine


def test_the_same_config_is_read_from_the_cache_not_retrained(tiny, cache, monkeypatch):
    first = train.run(CONFIG, tiny)
    assert len(list(cache.glob("*.json"))) == 1
    monkeypatch.setattr(train, "_train", lambda *args: pytest.fail("retrained a cached run"))
    assert train.run(CONFIG, tiny) == first


def test_the_cache_key_changes_with_the_config_and_the_data_but_not_with_docstrings(tiny):
    key = train.cache_key(CONFIG, tiny)
    assert train.cache_key(CONFIG.but(seed=1), tiny) != key
    assert train.cache_key(CONFIG, tiny.subsample(30)) != key
    assert train.cache_key(CONFIG.but(optimizer="sgd"), tiny) != key
    assert train.cache_key(CONFIG.but(dropout=0.5), tiny) != key
    same_size = data.Dataset("fashion_mnist", tiny.x_train[::-1], tiny.y_train[::-1], tiny.x_test,
                             tiny.y_test, "test")
    assert train.cache_key(CONFIG, same_size) != key  # the data enters by contents, not shape
    assert train.cache_key(train.RunConfig(**json.loads(json.dumps(CONFIG.to_dict()))), tiny) == key


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
    with pytest.raises(ValueError, match="unknown optimizer"):
        CONFIG.but(optimizer="adagrad")
    with pytest.raises(ValueError, match="unknown probe"):
        CONFIG.but(probes=("magic",))
    assert CONFIG.but(norm="layer", epochs=3).options == {"norm": "layer"}


def test_probes_are_recorded_per_epoch_and_leave_the_training_alone(tiny):
    probed = train.run(CONFIG.but(dropout=0.5, probes=tuple(train.PROBES)), tiny)
    plain = train.run(CONFIG.but(dropout=0.5), tiny)
    assert set(probed.probes) == set(train.PROBES)
    assert all(len(values) == CONFIG.epochs for values in probed.probes.values())
    assert all(0 <= v <= 1 for v in probed.metric("precise_bn_val_acc"))
    assert probed.metric("variance_shift")[-1] > 1.2  # dropout raises the training-time variance
    head = train.run(CONFIG.but(dropout=0.5, dropout_at="head", probes=("variance_shift",)), tiny)
    np.testing.assert_allclose(head.metric("variance_shift"), 1.0, rtol=1e-5)  # none before norm4
    np.testing.assert_allclose(probed.history["loss"], plain.history["loss"], rtol=1e-5)


def test_sgd_and_a_sigmoid_output_train(tiny):
    record = train.run(CONFIG.but(optimizer="sgd", learning_rate=0.01, output="sigmoid"), tiny)
    assert np.all(np.isfinite(record.history["loss"]))
