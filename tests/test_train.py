import json

import numpy as np
import pytest

from normlab import data, runtime, train

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


CONFIG = train.RunConfig(norm="batch", normalize_inputs=True, epochs=2, batch_size=16)


def test_a_run_records_the_history_and_the_time_of_each_epoch(tiny):
    record = train.run(CONFIG, tiny)
    assert record["config"]["norm"] == "batch" and record["dataset"] == "Fashion-MNIST"
    assert set(record["history"]) == {"loss", "acc", "val_loss", "val_acc"}
    assert all(len(values) == 2 for values in record["history"].values())
    assert len(record["train_seconds"]) == 2 and min(record["train_seconds"]) > 0
    assert record["device"].startswith("TensorFlow")


def test_the_same_config_is_read_from_the_cache_not_retrained(tiny, cache, monkeypatch):
    first = train.run(CONFIG, tiny)
    assert len(list(cache.glob("*.json"))) == 1
    monkeypatch.setattr(train, "_train", lambda *args: pytest.fail("retrained a cached run"))
    assert train.run(CONFIG, tiny) == first


def test_the_cache_key_changes_with_the_config_and_the_data_but_not_with_docstrings(tiny):
    key = train.cache_key(CONFIG, tiny)
    assert train.cache_key(CONFIG.but(seed=1), tiny) != key
    assert train.cache_key(CONFIG, tiny.subsample(30)) != key
    assert train.cache_key(train.RunConfig(**json.loads(json.dumps(vars(CONFIG)))), tiny) == key


def test_code_fingerprint_ignores_docstrings_and_comments_but_not_code(tmp_path, monkeypatch):
    import importlib.util
    import sys

    def fingerprint(source):
        path = tmp_path / "probe_module.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("probe_module", path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, "probe_module", module)
        spec.loader.exec_module(module)
        return train._code_fingerprint(module)

    plain = fingerprint('"""Doc."""\ndef f(x):\n    """Why."""\n    return x + 1\n')
    assert fingerprint('"""Other doc."""\ndef f(x):\n    # a comment\n    return x + 1\n') == plain
    assert fingerprint('"""Doc."""\ndef f(x):\n    """Why."""\n    return x + 2\n') != plain


def test_the_key_does_not_reread_the_source_files(tiny, monkeypatch):
    """Editing a file while a chapter trains must not change the keys of the runs still to come."""
    key = train.cache_key(CONFIG, tiny)
    monkeypatch.setattr(train, "_code_fingerprint", lambda *code: pytest.fail("read the sources again"))
    monkeypatch.setattr(train.inspect, "getsource", lambda obj: pytest.fail("read the sources again"))
    assert train.cache_key(CONFIG, tiny) == key


def test_seeds_make_runs_repeatable_and_different(tiny, cache):
    a, b = train.repeat(CONFIG, tiny, seeds=[0, 1])
    for path in cache.glob("*.json"):
        path.unlink()
    again = train.run(CONFIG.but(seed=0), tiny)
    np.testing.assert_allclose(again["history"]["loss"], a["history"]["loss"], rtol=1e-5)
    assert a["history"]["loss"] != b["history"]["loss"]


def test_metric_stacks_records_into_one_row_per_run(tiny):
    records = train.repeat(CONFIG, tiny, seeds=[0, 1, 2])
    assert train.metric(records, "val_acc").shape == (3, 2)
    assert train.metric(records, "train_seconds").shape == (3, 2)
    with pytest.raises(KeyError):
        train.metric(records, "accuracy")
