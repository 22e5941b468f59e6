"""Training runs over seeds, kept as plain records in an on-disk cache.

Explained in chapter 5 ("LeNet-5 experiments"). A :class:`RunConfig` says everything that
defines a run; :func:`run` trains it once, or reads the record a previous run left in the cache.
The cache key covers the config, the dataset, the library versions and the code of the normlab
modules a run uses (docstrings and comments aside), so re-executing a chapter with unchanged code
does not retrain, and a changed model does. The cache lives in ``~/.cache/normlab/runs``, or in
``$NORMLAB_CACHE``; delete it to retrain everything.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import json
import os
import textwrap
import time
from pathlib import Path

import numpy as np

from normlab import data, layers, models
from normlab.runtime import device_summary, import_tensorflow, set_seed

tf, keras = import_tensorflow()

CACHE_VARIABLE = "NORMLAB_CACHE"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run of :func:`normlab.models.lenet5` with Adam, as in the source article.

    ``n_train``/``n_test`` take a fixed random subset of the dataset (None keeps a split whole);
    the test split is the validation data, as in the article. ``seed`` sets the initial weights,
    the dropout masks and the order of the batches.
    """

    norm: str = "none"
    placement: str = "before"
    dropout: float = 0.0
    dropout_at: str = "hidden"
    normalize_inputs: bool = False
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    n_train: int | None = None
    n_test: int | None = None
    seed: int = 0

    def but(self, **changes) -> RunConfig:
        """A copy with some fields changed: ``base.but(norm="batch")``."""
        return dataclasses.replace(self, **changes)


def cache_dir() -> Path:
    """Where records are kept: ``$NORMLAB_CACHE`` or ``~/.cache/normlab/runs``."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "normlab" / "runs")


def run(config: RunConfig, dataset: data.Dataset) -> dict:
    """Train ``config`` on ``dataset``, or return its cached record.

    The record holds the config, the dataset's title, the device, the per-epoch ``history``
    (loss, acc, val_loss, val_acc) and ``train_seconds``: the wall time of each epoch's training
    part, validation excluded.
    """
    path = cache_dir() / f"{cache_key(config, dataset)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    record = _train(config, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(record))
    partial.replace(path)  # atomic: a reader never sees half a record
    return record


def repeat(config: RunConfig, dataset: data.Dataset, seeds) -> list[dict]:
    """:func:`run` once per seed."""
    return [run(config.but(seed=seed), dataset) for seed in seeds]


def metric(records, name: str) -> np.ndarray:
    """One metric's per-epoch values as an array with a row per record, e.g. ``"val_acc"``."""
    if name == "train_seconds":
        return np.array([r["train_seconds"] for r in records])
    return np.array([r["history"][name] for r in records])


def cache_key(config: RunConfig, dataset: data.Dataset) -> str:
    """A hash of everything a run's result depends on."""
    identity = {
        "config": dataclasses.asdict(config),
        "dataset": [dataset.key, dataset.x_train.shape, dataset.x_test.shape],
        "versions": [tf.__version__, keras.__version__, np.__version__],
        "code": _RUN_FINGERPRINT,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def _code_fingerprint(*code) -> str:
    """Hash the syntax trees of the code a run executes (modules, classes, functions), without
    docstrings: rewording the docs, or changing how a dataset is found, keeps the cache."""
    digest = hashlib.sha256()
    for obj in code:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
        for node in ast.walk(tree):
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                    and ast.get_docstring(node) is not None):
                node.body = node.body[1:] or [ast.Pass()]
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()


class _TrainTimer(keras.callbacks.Callback):
    """Wall time of each epoch's training steps, stopped when validation starts."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None


def _train(config: RunConfig, dataset: data.Dataset) -> dict:
    subset = dataset.subsample(config.n_train, config.n_test, seed=0)
    set_seed(config.seed)
    normalizer = None
    if config.normalize_inputs:
        normalizer = keras.layers.Normalization(name="input_normalization")
        normalizer.adapt(data.pipeline(subset.x_train, subset.y_train, 1024).map(lambda x, y: x))
    model = models.lenet5(
        subset.x_train.shape[1:], len(subset.class_names), norm=config.norm,
        placement=config.placement, dropout=config.dropout, dropout_at=config.dropout_at,
        input_normalization=normalizer)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["acc"])
    timer = _TrainTimer()
    history = model.fit(
        data.pipeline(subset.x_train, subset.y_train, config.batch_size, shuffle_seed=config.seed),
        validation_data=data.pipeline(subset.x_test, subset.y_test, 1024),
        epochs=config.epochs, shuffle=False, verbose=0, callbacks=[timer])
    return {
        "config": dataclasses.asdict(config),
        "dataset": subset.title,
        "device": device_summary(),
        "history": {name: [float(v) for v in values] for name, values in history.history.items()},
        "train_seconds": timer.seconds,
    }


# What a run executes, and so what the cache key covers: code elsewhere in normlab (how a dataset
# is found, the plots) can change without retraining. Hashed once, at import: ``inspect`` reads the
# source files again on every call, so a file edited while a long chapter runs would otherwise
# give the same code a different key half-way through.
_RUN_CODE = (RunConfig, _TrainTimer, _train, set_seed, data.Dataset.subsample, data.pipeline,
             layers, models)
_RUN_FINGERPRINT = _code_fingerprint(*_RUN_CODE)
