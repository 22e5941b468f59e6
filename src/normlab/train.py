"""Training runs over seeds, kept as typed records and weights in an on-disk cache.

Explained in chapter 5 ("LeNet-5 experiments"). A :class:`RunConfig` says everything that
defines a run: which builder of :mod:`normlab.models` makes the model and with which arguments,
how the pixels are normalized, the optimizer, the data subset, the seed, and the probes measured
after every epoch. :func:`run` trains it once, or reads the :class:`Record` a previous run left in
the cache; :func:`trained_model` gives the trained network itself, to analyse further. The cache
key covers the config, the contents of the data, the library versions and the normlab code the
run can reach (:mod:`normlab.fingerprint`), so re-executing a chapter with unchanged code does not
retrain, and a changed model does. :func:`fit_seeds`, for models no config can name, keeps its
histories there too. The cache lives in ``~/.cache/normlab/runs``, or in ``$NORMLAB_CACHE``;
delete it to retrain everything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import time
from pathlib import Path

import numpy as np

from normlab import data, fingerprint, models
from normlab.layers import dropout_off, precise_batch_norm
from normlab.probes import (
    accuracy,
    dead_relu_fraction,
    gradient_norm,
    ics,
    landscape,
    response_quantiles,
    response_std,
    sigmoid_percentiles,
    total_gradient_norm,
    update_ratio,
)
from normlab.runtime import device_summary, import_tensorflow, machine_summary, set_seed

tf, keras = import_tensorflow()

CACHE_VARIABLE = "NORMLAB_CACHE"
INPUTS = ("raw", "scaled", "standardized", "per_image")
OPTIMIZERS = ("adam", "sgd")
EVALUATIONS = ("every_epoch", "last_epoch")
SGD_MOMENTUM = 0.9
STEPS_PER_EXECUTION = 8  # 22 % off an epoch at batch size 2, nothing at 256 (AMD EPYC, 2 cores)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run: a model from :mod:`normlab.models`, trained as the source article does.

    ``options`` are the builder's keyword arguments (``norm="batch"``, ...). ``inputs`` says what
    the model's first layer does to the pixels (chapter 1): ``"raw"`` nothing (0 to 255),
    ``"scaled"`` divides them by 255, ``"standardized"`` is a ``keras.layers.Normalization``
    adapted on the training images (per channel), ``"per_image"`` standardizes each image by its
    own mean and standard deviation. ``optimizer`` is ``"adam"`` or ``"sgd"`` (with momentum 0.9).
    ``n_train``/``n_test`` take a fixed random subset of the dataset (None keeps a split whole);
    the test split is the validation data, as in the article. ``seed`` sets the initial weights,
    the dropout masks and the order of the batches. ``probes`` name functions of :data:`PROBES`
    measured after every epoch or, with ``probe_every``, before training and then every
    ``probe_every`` training steps (chapters 6 and 7). ``evaluate="last_epoch"`` validates, and
    measures the per-epoch probes, after the last epoch only: for the runs of a sweep, which a
    page reads only at the end, it saves the time of the evaluations nobody reads.

    He et al.'s schedule (chapter 6): ``warmup_steps`` at a tenth of the learning rate, then the
    rate, divided by 10 at each of ``decay_steps``. It is set step by step, so it needs
    ``probe_every``.
    """

    model: str = "lenet5"
    options: dict = dataclasses.field(default_factory=dict)
    inputs: str = "raw"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 10
    batch_size: int = 256
    n_train: int | None = None
    n_test: int | None = None
    seed: int = 0
    probes: tuple[str, ...] = ()
    probe_every: int | None = None
    evaluate: str = "every_epoch"
    warmup_steps: int = 0
    decay_steps: tuple[int, ...] = ()

    def __post_init__(self):
        builder = getattr(models, self.model, None)
        if self.model not in models.BUILDERS or builder is None:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(models.BUILDERS)}")
        accepted = set(inspect.signature(builder).parameters) - {"input_shape", "num_classes",
                                                                 "input_normalization"}
        unknown = set(self.options) - accepted
        if unknown:
            raise ValueError(f"{self.model} takes no argument {', '.join(sorted(unknown))}; "
                             f"it takes {', '.join(sorted(accepted))}")
        if self.inputs not in INPUTS:
            raise ValueError(f"unknown inputs {self.inputs!r}; choose one of {', '.join(INPUTS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        unknown = set(self.probes) - set(PROBES)
        if unknown:
            raise ValueError(f"unknown probe(s) {', '.join(sorted(unknown))}; "
                             f"choose from {', '.join(PROBES)}")
        per_layer = [name for name in self.probes
                     if str(inspect.signature(PROBES[name]).return_annotation).startswith("list")]
        if per_layer and self.probe_every is None:
            raise ValueError(f"probe(s) {', '.join(per_layer)} return one value per layer (a list): "
                             "measure them with probe_every")
        if self.probe_every is not None and not (isinstance(self.probe_every, int)
                                                 and self.probe_every > 0 and self.probes):
            raise ValueError(f"probe_every must be a positive number of steps, with probes to "
                             f"measure; got {self.probe_every!r} with probes {self.probes!r}")
        if self.evaluate not in EVALUATIONS:
            raise ValueError(f"unknown evaluate {self.evaluate!r}; choose one of {', '.join(EVALUATIONS)}")
        boundaries = [self.warmup_steps, *self.decay_steps] if self.warmup_steps else list(self.decay_steps)
        if not all(isinstance(b, int) and b > 0 for b in boundaries) or boundaries != sorted(set(boundaries)):
            raise ValueError(f"warmup_steps and decay_steps must be increasing positive step counts, got "
                             f"{self.warmup_steps!r} and {self.decay_steps!r}")
        if boundaries and self.probe_every is None:
            raise ValueError("a learning-rate schedule is set step by step: give probe_every too")
        object.__setattr__(self, "probes", tuple(self.probes))
        object.__setattr__(self, "decay_steps", tuple(self.decay_steps))

    def but(self, **changes) -> RunConfig:
        """A copy with some fields or model options changed: ``base.but(norm="batch", epochs=3)``."""
        fields = {f.name for f in dataclasses.fields(self)}
        options = {**self.options, **{k: v for k, v in changes.items() if k not in fields}}
        return dataclasses.replace(self, options=options,
                                   **{k: v for k, v in changes.items() if k in fields})

    def to_dict(self) -> dict:
        """The fields, without an unused ``probe_every``, a default ``evaluate`` or an unused
        schedule: a config keeps the cache key it had before those fields existed."""
        values = {**dataclasses.asdict(self), "probes": list(self.probes)}
        if self.probe_every is None:
            del values["probe_every"]
        if self.evaluate == "every_epoch":
            del values["evaluate"]
        for name in ("warmup_steps", "decay_steps"):
            if not values[name]:
                del values[name]
        return values


@dataclasses.dataclass(frozen=True)
class Record:
    """What one run left behind: per-epoch ``history`` (loss, acc, val_loss, val_acc),
    ``probes`` (a value, a number or a list, per epoch or per ``probe_every`` steps), and
    ``train_seconds``, the wall time of each epoch's training steps (validation and probes
    excluded) on ``machine``."""

    config: RunConfig
    dataset: str
    device: str
    machine: str
    history: dict[str, list[float]]
    probes: dict[str, list]
    train_seconds: list[float]

    def metric(self, name: str) -> np.ndarray:
        """One metric per epoch: a history entry, a probe or ``"train_seconds"``."""
        if name == "train_seconds":
            return np.asarray(self.train_seconds)
        if name in self.history:
            return np.asarray(self.history[name])
        if name in self.probes:
            return np.asarray(self.probes[name])
        raise KeyError(f"no metric {name!r}; this run has {', '.join([*self.history, *self.probes])} "
                       "and train_seconds")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> Record:
        return cls(**{**values, "config": RunConfig(**values["config"])})


def cache_dir() -> Path:
    """Where records are kept: ``$NORMLAB_CACHE`` or ``~/.cache/normlab/runs``."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "normlab" / "runs")


def run(config: RunConfig, dataset: data.Dataset) -> Record:
    """Train ``config`` on ``dataset``, or return its cached :class:`Record`."""
    return _cached(config, dataset)[0]


def trained_model(config: RunConfig, dataset: data.Dataset):
    """The compiled model that :func:`run` trains for ``config``, with its final weights (and
    moving statistics) read from the cache, so a chapter can look inside it (chapter 4)."""
    _, subset, weights = _cached(config, dataset)
    model = _build(config, subset)
    model.load_weights(weights)  # before compiling: the optimizer's saved state is not wanted
    return _compile(model, config)


def _cached(config: RunConfig, dataset: data.Dataset):
    """The run's record, the data subset it trained on and its weights file: read or trained."""
    subset = dataset.subsample(config.n_train, config.n_test, seed=0)
    path = cache_dir() / f"{cache_key(config, subset)}.json"
    weights = path.with_suffix(".weights.h5")
    if not (path.is_file() and weights.is_file()):
        trainer = _train if config.probe_every is None else _trace
        measured, model = trainer(config, subset, {name: PROBES[name] for name in config.probes})
        record = Record(config=config, dataset=subset.title, **measured)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.weights.h5")
        model.compile()  # a fresh optimizer: the file keeps the weights, not Adam's moments
        model.save_weights(partial)
        partial.replace(weights)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(record.to_dict()))
        partial.replace(path)  # atomic, and last: a record in the cache has its weights
        return record, subset, weights
    return Record.from_dict(json.loads(path.read_text())), subset, weights


def repeat(config: RunConfig, dataset: data.Dataset, seeds) -> list[Record]:
    """:func:`run` once per seed."""
    return [run(config.but(seed=seed), dataset) for seed in seeds]


def metric(records, name: str) -> np.ndarray:
    """One metric's per-epoch values with a row per record, e.g. ``metric(runs, "val_acc")``."""
    return np.array([record.metric(name) for record in records])


def cache_key(config: RunConfig, subset: data.Dataset) -> str:
    """A hash of everything a run's result depends on, for the data it trains on.

    The code is what trains and measures this run (the training loop, its builder, its probes),
    not the lists of choices a config is checked against, so adding a model or a probe to
    normlab keeps every cached run; the record's fields are there so that a changed record
    format is not read from old files.
    """
    probes = [f"{PROBES[name].__module__.removeprefix('normlab.')}.{name}" for name in config.probes]
    identity = {
        "config": config.to_dict(),
        "data": [subset.key, fingerprint.arrays(subset.x_train, subset.y_train,
                                                subset.x_test, subset.y_test)],
        "versions": [tf.__version__, keras.__version__, np.__version__],
        "code": fingerprint.code("train._train" if config.probe_every is None else "train._trace",
                                 f"models.{config.model}", *probes),
        "record": [field.name for field in dataclasses.fields(Record)],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def _snapshot(model):
    """The model's non-trainable state (moving statistics, dropout seeds), to put back later."""
    return [v.numpy() for v in model.non_trainable_variables]


def _restore(model, state) -> None:
    for variable, value in zip(model.non_trainable_variables, state, strict=True):
        variable.assign(value)


SETTLED_TIME_CONSTANTS = 3  # momentum**steps <= about e**-3 = 5 % of the initial statistics left


def training_steps(config: RunConfig, n_train: int) -> int:
    """The training steps of a run on ``n_train`` images (the last batch of an epoch may be partial)."""
    return config.epochs * -(-n_train // config.batch_size)


def moving_averages_settled(n_steps: int, momentum: float = 0.99) -> bool:
    """The book's rule for short runs (chapter 4): after ``n_steps`` updates, moving statistics
    with ``momentum`` still hold ``momentum**n_steps`` of their initial values (0.99**128 = 28 %);
    they have settled when the run lasts at least 3 time constants, 3 / (1 - momentum) steps
    (300 for Keras's default 0.99), which leaves at most about 5 %."""
    return n_steps >= SETTLED_TIME_CONSTANTS / (1 - momentum) - 1e-9  # 3 / (1 - 0.9) is 30.000000000000004


def bn_accuracy_metric(config: RunConfig, n_train: int, momentum: float = 0.99) -> str:
    """The metric a batch-norm run's accuracy is read from, by :func:`moving_averages_settled`:
    ``"val_acc"`` (its moving averages) when they settled, else ``"precise_bn_val_acc"`` (PreciseBN
    statistics, chapter 4), which the run must then measure as a probe."""
    if moving_averages_settled(training_steps(config, n_train), momentum):
        return "val_acc"
    if "precise_bn_val_acc" not in config.probes:
        raise ValueError(f"a run of {training_steps(config, n_train)} steps has unsettled moving averages: "
                         "add the probe precise_bn_val_acc to evaluate it with PreciseBN statistics")
    return "precise_bn_val_acc"


def precise_bn_batches(n_train: int) -> int:
    """How many training batches of 256 :func:`precise_bn_val_acc` averages: 20, or every batch
    that a smaller training set gives (12, the last one partial, for 3,000 images)."""
    return min(20, -(-n_train // 256))


def precise_bn_val_acc(model, subset: data.Dataset, config: RunConfig) -> float:
    """Validation accuracy with PreciseBN statistics: batch-norm moving averages recomputed from
    :func:`precise_bn_batches` training batches with the final weights (chapter 4); the model is
    then put back."""
    state = _snapshot(model)
    try:
        batches = data.pipeline(subset.x_train, subset.y_train, 256, shuffle_seed=0)
        precise_batch_norm(model, batches, precise_bn_batches(len(subset.x_train)))
        predicted = [np.argmax(model(x, training=False), axis=-1)
                     for x, _ in data.pipeline(subset.x_test, subset.y_test, 1024)]
        return float(np.mean(np.concatenate(predicted) == subset.y_test))
    finally:
        _restore(model, state)


def batch_statistics_outputs(model, x, batch_size: int) -> np.ndarray:
    """The model's outputs when every batch of ``batch_size`` is normalized by its own statistics,
    as in training, so no moving average is involved (chapter 4). Dropout is off, and the moving
    statistics these training-mode calls update are put back."""
    state = _snapshot(model)
    forward = tf.function(lambda batch: model(batch, training=True), reduce_retracing=True)
    try:
        with dropout_off(model):
            return np.concatenate([forward(np.asarray(x[i:i + batch_size], "float32"))
                                   for i in range(0, len(x), batch_size)])
    finally:
        _restore(model, state)


def batch_stats_val_acc(model, subset: data.Dataset, config: RunConfig) -> float:
    """Validation accuracy with each test batch, of the training batch size, normalized by its own
    statistics (:func:`batch_statistics_outputs`)."""
    outputs = batch_statistics_outputs(model, subset.x_test, config.batch_size)
    return float(np.mean(np.argmax(outputs, axis=-1) == subset.y_test))


def variance_shift(model, subset: data.Dataset, config: RunConfig) -> float:
    """How much dropout raises the variance that the last batch-norm layer sees in training over
    what it sees at inference (Li et al., 2019): the mean over that layer's input features of
    var(dropout on) / var(dropout off), on 1,024 test images. Both passes run in training mode,
    so the batch-norm layers before it use batch statistics in both and only dropout differs.
    1 means no shift."""
    names = [layer.name for layer in model.layers]
    if "norm4" not in names:
        raise ValueError("variance_shift needs a LeNet-5 with normalization (a layer named norm4)")
    probe = keras.Model(model.inputs[0], model.layers[names.index("norm4") - 1].output)
    x = subset.x_test[:1024].astype("float32")
    state = _snapshot(model)
    try:
        with_dropout = np.var(np.asarray(probe(x, training=True)), axis=0)
        with dropout_off(model):
            without = np.var(np.asarray(probe(x, training=True)), axis=0)
        return float(np.mean(with_dropout / np.maximum(without, 1e-12)))
    finally:
        _restore(model, state)


PROBES = {"precise_bn_val_acc": precise_bn_val_acc, "batch_stats_val_acc": batch_stats_val_acc,
          "variance_shift": variance_shift, "accuracy": accuracy, "response_std": response_std,
          "gradient_norm": gradient_norm, "sigmoid_percentiles": sigmoid_percentiles,
          "response_quantiles": response_quantiles, "ics": ics, "landscape": landscape,
          "total_gradient_norm": total_gradient_norm, "dead_relu_fraction": dead_relu_fraction,
          "update_ratio": update_ratio}


class _Probes(keras.callbacks.Callback):
    """Measures ``probes`` (name: function) into ``values`` and times each epoch's training steps:
    the clock stops when validation starts (or the epoch ends, if it has none), less the time the
    probes took during the steps."""

    def __init__(self, probes, subset, config):
        super().__init__()
        self.probes, self.subset, self.config = probes, subset, config
        self.values = {name: [] for name in probes}
        self.seconds, self._start, self._probing = [], None, 0.0

    def _measure(self):
        start = time.perf_counter()
        for name, probe in self.probes.items():
            self.values[name].append(np.asarray(probe(self.model, self.subset, self.config)).tolist())
        self._probing += time.perf_counter() - start

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._probing = time.perf_counter(), 0.0

    def on_test_begin(self, logs=None):
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start - self._probing)
            self._start = None

    def on_epoch_end(self, epoch, logs=None):
        self.on_test_begin()


class _Epochs(_Probes):
    """Runs the probes after each epoch's validation, or after the last epoch's only."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.config.evaluate == "every_epoch" or epoch == self.config.epochs - 1:
            self._measure()


def _optimizer(config: RunConfig):
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(config.learning_rate, momentum=SGD_MOMENTUM)
    return keras.optimizers.Adam(config.learning_rate)


def learning_rate(config: RunConfig, step: int) -> float:
    """The rate of a config's schedule at ``step``: a tenth of it for ``warmup_steps``, then ten
    times less after each of ``decay_steps`` (chapter 6)."""
    if step < config.warmup_steps:
        return config.learning_rate / 10
    return config.learning_rate / 10 ** sum(step >= boundary for boundary in config.decay_steps)


def _input_layer(inputs: str, subset: data.Dataset):
    """The first layer that :class:`RunConfig`'s ``inputs`` asks for, or None for raw pixels."""
    name = "input_normalization"
    if inputs == "scaled":
        return keras.layers.Rescaling(1 / 255, name=name)
    if inputs == "per_image":
        return keras.layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False, name=name)
    if inputs == "standardized":
        layer = keras.layers.Normalization(name=name)
        layer.adapt(data.pipeline(subset.x_train, subset.y_train, 1024).map(lambda x, y: x))
        return layer
    return None


def _build(config: RunConfig, subset: data.Dataset):
    return getattr(models, config.model)(
        subset.x_train.shape[1:], len(subset.class_names),
        input_normalization=_input_layer(config.inputs, subset), **config.options)


def _compile(model, config: RunConfig, steps_per_execution: int = 1):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=models.returns_logits(model))
    model.compile(optimizer=_optimizer(config), loss=loss, metrics=["acc"],
                  steps_per_execution=steps_per_execution)
    return model


def _fit(config: RunConfig, subset: data.Dataset, callback: _Probes):
    """Train a run with ``callback`` measuring its probes; returns the fields of its
    :class:`Record` that training measures, and the trained model."""
    set_seed(config.seed)
    # several steps per call into TensorFlow: the same steps with less Python between them, which
    # is most of a small batch's step; a probe every few steps needs the callbacks of every step
    steps = STEPS_PER_EXECUTION if config.probe_every is None else 1
    model = _compile(_build(config, subset), config, steps)
    history = model.fit(
        data.pipeline(subset.x_train, subset.y_train, config.batch_size, shuffle_seed=config.seed),
        validation_data=data.pipeline(subset.x_test, subset.y_test, 1024),
        validation_freq=1 if config.evaluate == "every_epoch" else config.epochs,
        epochs=config.epochs, shuffle=False, verbose=0, callbacks=[callback])
    measured = dict(
        device=device_summary(), machine=machine_summary(),
        history={name: [float(v) for v in values] for name, values in history.history.items()},
        probes=callback.values, train_seconds=callback.seconds)
    return measured, model


def _train(config: RunConfig, subset: data.Dataset, probes: dict):
    """Train a run, measuring ``probes`` (name: function) after every epoch (:class:`_Epochs`)."""
    return _fit(config, subset, _Epochs(probes, subset, config))


class _Steps(_Probes):
    """Runs the probes before the first step and after every ``config.probe_every`` steps, and
    sets the learning rate of the config's schedule before each step."""

    def __init__(self, probes, subset, config):
        super().__init__(probes, subset, config)
        self.steps = 0

    def _next_rate(self):  # before the probes, which may take the next step to measure it
        if self.config.warmup_steps or self.config.decay_steps:
            self.model.optimizer.learning_rate = learning_rate(self.config, self.steps)

    def on_train_begin(self, logs=None):
        self._next_rate()
        self._measure()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self._next_rate()
        if self.steps % self.config.probe_every == 0:
            self._measure()


def _trace(config: RunConfig, subset: data.Dataset, probes: dict):
    """:func:`_train` with the probes measured every ``config.probe_every`` steps (:class:`_Steps`),
    which may return lists (one value per layer, ...)."""
    return _fit(config, subset, _Steps(probes, subset, config))


def fit_seeds(build, train_data, test_data, seeds, *, epochs: int, batch_size: int = 256,
              optimizer=None, pipeline=None, evaluate: str = "every_epoch",
              after=None) -> dict[str, np.ndarray]:
    """Train ``build()`` once per seed with ``fit``, for the experiments a :class:`RunConfig` cannot
    name (chapter 8: custom layers, sequences, non-i.i.d. batches).

    ``train_data``/``test_data`` are ``(x, y)`` arrays; ``optimizer()`` makes a fresh optimizer per
    run (default Adam, 1e-3); ``pipeline(x, y, batch_size, seed)`` makes the training batches
    (default :func:`normlab.data.pipeline`, reshuffled every epoch). The model returns logits.
    ``evaluate="last_epoch"`` tests after the last epoch only. ``after(model)``, a normlab function
    (e.g. :func:`normlab.layers.renorm_clipping`), measures the trained model and returns a dict
    of numbers or lists, kept with the history. Returns each metric of the history (loss, acc,
    val_loss, val_acc) and each of ``after``'s values with a row per seed.

    Each seed's history is cached like :func:`run`'s records. A builder cannot be named the way a
    config is, so the key is taken from what the run starts with (:func:`_fit_key`).
    """
    if evaluate not in EVALUATIONS:
        raise ValueError(f"unknown evaluate {evaluate!r}; choose one of {', '.join(EVALUATIONS)}")
    measured_after = _normlab_name(after) if after is not None else None
    optimizer = optimizer or (lambda: keras.optimizers.Adam(1e-3))
    pipeline = pipeline or (lambda x, y, size, seed: data.pipeline(x, y, size, shuffle_seed=seed))
    histories = []
    for seed in seeds:
        set_seed(seed)
        batches = fingerprint.batches(pipeline(*train_data, batch_size, seed))
        set_seed(seed)
        model = build()
        model.compile(optimizer=optimizer(), metrics=["acc"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      steps_per_execution=STEPS_PER_EXECUTION)
        key = _fit_key(model, batches, test_data, epochs, evaluate, measured_after)
        path = cache_dir() / "fit" / f"{key}.json"
        if not path.is_file():
            history = model.fit(pipeline(*train_data, batch_size, seed), epochs=epochs, verbose=0,
                                shuffle=False, validation_data=data.pipeline(*test_data, 1024),
                                validation_freq=1 if evaluate == "every_epoch" else epochs)
            values = {name: [float(v) for v in values] for name, values in history.history.items()}
            values.update(after(model) if after is not None else {})
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(values))
            partial.replace(path)
        histories.append(json.loads(path.read_text()))
    return {name: np.array([h[name] for h in histories]) for name in histories[0]}


def _normlab_name(function) -> str:
    """``"layers.renorm_clipping"`` for a normlab function: the name its code is fingerprinted by."""
    module = getattr(function, "__module__", "") or ""
    if not module.startswith("normlab.") or "." in function.__qualname__:
        raise ValueError(f"after must be a function of a normlab module, so that its code keys the "
                         f"cached runs; got {function!r}")
    return f"{module.removeprefix('normlab.')}.{function.__qualname__}"


def _fit_key(model, batches: str, test_data, epochs: int, evaluate: str,
             after: str | None = None) -> str:
    """A hash of what a :func:`fit_seeds` run starts with: the compiled model as Keras describes
    it (its layers, optimizer and loss with their arguments), the code of any layer or optimizer
    class written outside Keras, the initial weights (so the seed and the initializers), every
    training batch of the first epoch in order (the data, the pipeline and its shuffle seed), the
    test data, the schedule and what is measured ``after`` training."""
    layers = list(model._flatten_layers())
    description = model.to_json()  # with the compile arguments: the optimizer's, the loss's
    for i, named in enumerate([*layers, model.optimizer]):  # Keras numbers the unnamed per process
        description = description.replace(f'"{named.name}"', f'"object {i}"')
    identity = {
        "model": description,
        "classes": fingerprint.classes(*map(type, layers), type(model.optimizer)),
        "weights": fingerprint.arrays(*model.get_weights()),
        "data": [batches, fingerprint.arrays(*test_data)],
        "schedule": [epochs, evaluate],
        "versions": [tf.__version__, keras.__version__, np.__version__],
        "code": fingerprint.code("train.fit_seeds", "data.pipeline", *([after] if after else [])),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def unit_norms(tensor):
    """The norm of each output unit's weights, over every axis but the last (a dense or conv
    kernel's output units), or of a whole vector (a bias, a scale), as Brock et al. clip them."""
    if len(tensor.shape) <= 1:
        return keras.ops.sqrt(keras.ops.sum(keras.ops.square(tensor)))
    axes = tuple(range(len(tensor.shape) - 1))
    return keras.ops.sqrt(keras.ops.sum(keras.ops.square(tensor), axis=axes, keepdims=True))


def _layer_name(variable) -> str:
    """The name of the layer that owns ``variable``: "logits" for "sequential/logits/kernel"."""
    parts = variable.path.split("/")
    return parts[-2] if len(parts) > 1 else ""


@keras.saving.register_keras_serializable(package="normlab")
class AdaptiveClippingSGD(keras.optimizers.SGD):
    """SGD with adaptive gradient clipping (Brock et al., 2021): each unit's gradient ``G_i`` is
    rescaled so that ``|G_i| <= clipping * max(|W_i|, epsilon)``, a bound on the gradient relative
    to the unit's weights (with momentum a step can exceed it: it sums past gradients). It is what
    lets their normalizer-free networks train at batch-norm learning rates. As in the paper a bias
    is clipped by the norm of the whole vector, and the final layer can be left unclipped
    (``unclipped``). Explained in chapter 8.

    Args:
        clipping: the largest ratio |G_i| / |W_i| per unit (the paper's lambda).
        epsilon: the smallest weight norm, so zero-initialized weights can move.
        unclipped: names of the layers whose gradients are left as they are (the paper leaves
            the classifier, e.g. ``("logits",)``).
        **kwargs: as for ``keras.optimizers.SGD``.
    """

    def __init__(self, clipping=0.01, epsilon=1e-3, unclipped=(), **kwargs):
        super().__init__(**kwargs)
        if not clipping > 0:
            raise ValueError(f"clipping must be > 0, got {clipping}")
        if isinstance(unclipped, str):
            raise ValueError(f"unclipped must be a list of layer names, not the string {unclipped!r}")
        self.clipping, self.clip_epsilon = float(clipping), float(epsilon)
        self.unclipped = tuple(unclipped)

    def apply(self, grads, trainable_variables=None):
        variables = trainable_variables
        if variables is None:
            variables = self._trainable_variables
        clipped = []
        for grad, variable in zip(grads, variables, strict=True):
            if _layer_name(variable) in self.unclipped:
                clipped.append(grad)
                continue
            limit = self.clipping * keras.ops.maximum(unit_norms(variable), self.clip_epsilon)
            norm = keras.ops.maximum(unit_norms(grad), 1e-6)
            clipped.append(grad * keras.ops.minimum(1.0, limit / norm))
        return super().apply(clipped, trainable_variables)

    def get_config(self):
        return {**super().get_config(), "clipping": self.clipping, "epsilon": self.clip_epsilon,
                "unclipped": list(self.unclipped)}
