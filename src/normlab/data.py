"""Datasets for the chapters, loaded through ``keras.datasets`` or an offline copy.

Explained in chapter 1, section "Setup". CIFAR-10 is the book's default, as in the source
articles; where it cannot be downloaded, Fashion-MNIST is read from the Debian package
``dataset-fashion-mnist`` (the same files Keras downloads), so every chapter also runs offline.
Where neither is available, the ``smoke`` profile uses a small Fashion-MNIST sample that ships
with normlab, so the tests pass on a machine with nothing installed by hand. The page always
prints which dataset ran.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import socket
import textwrap
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from normlab.runtime import import_tensorflow, int_argument, profile

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
SAMPLE_DIR = Path(__file__).resolve().parent / "datasets" / "fashion-mnist-sample"
# Where keras.datasets downloads from; asked first, so that an offline machine fails quietly.
ORIGINS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "fashion_mnist": "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
                     "train-labels-idx1-ubyte.gz",
    "mnist": "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
}
NAMES = ("default", "cifar10", "fashion_mnist", "mnist")
TITLES = {"cifar10": "CIFAR-10", "fashion_mnist": "Fashion-MNIST", "mnist": "MNIST"}
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
    "fashion_mnist": ("T-shirt/top", "trouser", "pullover", "dress", "coat",
                      "sandal", "shirt", "sneaker", "bag", "ankle boot"),
}
_FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class DatasetUnavailableError(RuntimeError):
    """A dataset could neither be read from disk nor downloaded."""


class DatasetCorruptError(DatasetUnavailableError):
    """A dataset file on disk is damaged (not gzip, truncated, not IDX): a broken install, which no
    fallback should hide."""


def _count(name: str, value, *, optional: bool = False) -> int | None:
    """A count or seed argument as an int (None where ``optional``), else a ValueError naming it."""
    return None if optional and value is None else int_argument(name, value)


@dataclass(frozen=True)
class Dataset:
    """Images as ``(N, H, W, C)`` arrays (uint8 as loaded) and labels as int ``(N,)`` arrays.

    ``class_names`` default to the dataset's own ten.
    """

    key: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    note: str = ""
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.class_names:
            object.__setattr__(self, "class_names", CLASS_NAMES[self.key])

    @property
    def title(self) -> str:
        return TITLES[self.key]

    def describe(self) -> str:
        """A few short lines for the page: which data ran, how much of it, and from where."""
        h, w, c = self.x_train.shape[1:]
        lines = [f"dataset: {self.title}, {len(self.class_names)} classes, {h}x{w}x{c} images: "
                 f"{len(self.x_train):,} train, {len(self.x_test):,} test",
                 f"source: {self.source}"]
        if self.note:
            lines.append(f"note: {self.note}")
        return "\n".join(textwrap.fill(line, 78, subsequent_indent="  ") for line in lines)

    def subsample(self, n_train: int, n_test: int | None = None, seed: int = 0) -> Dataset:
        """A random subset, e.g. for the ``smoke`` profile; ``None`` keeps a split whole."""
        n_train, n_test = _count("n_train", n_train, optional=True), _count("n_test", n_test, optional=True)
        rng = np.random.default_rng(_count("seed", seed))

        def pick(x, y, n):
            if n is None or n >= len(x):
                return x, y
            if n < 1:
                raise ValueError(f"subsample size must be at least 1, got {n}")
            idx = np.sort(rng.choice(len(x), size=n, replace=False))
            return x[idx], y[idx]

        x_train, y_train = pick(self.x_train, self.y_train, n_train)
        x_test, y_test = pick(self.x_test, self.y_test, n_test)
        return replace(self, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    def pooled(self, factor: int) -> Dataset:
        """Every image averaged over ``factor`` x ``factor`` blocks of pixels (rounded back to
        uint8), a side that ``factor`` does not divide cropped first: a quarter of the pixels at
        ``factor=2``, and about a quarter of a conv network's work, for a run that needs many
        steps on a CPU (chapter 6)."""
        factor = _count("factor", factor)
        if not 1 <= factor <= min(self.x_train.shape[1:3]):
            raise ValueError(f"factor must be between 1 and the image's side, got {factor}")
        h, w = self.x_train.shape[1] // factor, self.x_train.shape[2] // factor

        def pool(x):
            blocks = x[:, :h * factor, :w * factor].reshape(len(x), h, factor, w, factor, -1)
            return np.round(blocks.mean(axis=(2, 4))).astype(x.dtype)

        note = f"images averaged over {factor}x{factor} pixels to {h}x{w}"
        return replace(self, x_train=pool(self.x_train), x_test=pool(self.x_test),
                       note="; ".join(filter(None, (self.note, note))))

    def validation_split(self, n_validation: int) -> Dataset:
        """The training split cut in two: the last ``n_validation`` training images become the
        test split, so that a setting chosen on them (a "best" learning rate, chapter 5) can
        then be tested on the real test split, which the choice never saw."""
        n_validation = _count("n_validation", n_validation)
        if not 0 < n_validation < len(self.x_train):
            raise ValueError(f"n_validation must leave training images on both sides: between 1 and "
                             f"{len(self.x_train) - 1}, got {n_validation}")
        cut = len(self.x_train) - n_validation
        return replace(self, x_train=self.x_train[:cut], y_train=self.y_train[:cut],
                       x_test=self.x_train[cut:], y_test=self.y_train[cut:],
                       note=f"a validation split: the last {n_validation:,} training images stand in "
                            "for the test split")

    def only_classes(self, classes) -> Dataset:
        """The images of some classes only, relabelled 0, 1, ... in the order given: a smaller
        task, e.g. to pretrain on before fine-tuning on the others (chapter 4)."""
        classes = list(classes) if hasattr(classes, "__iter__") else classes
        if not isinstance(classes, list) or not classes or len(set(classes)) < len(classes) \
                or not all(isinstance(c, (int, np.integer)) and c in range(len(self.class_names))
                           for c in classes):
            raise ValueError(f"classes must be distinct labels of {len(self.class_names)} classes, "
                             f"got {classes}")
        relabel = np.full(len(self.class_names), -1)
        relabel[classes] = np.arange(len(classes))

        def keep(x, y):
            kept = relabel[y] >= 0
            return x[kept], relabel[y[kept]]

        x_train, y_train = keep(self.x_train, self.y_train)
        x_test, y_test = keep(self.x_test, self.y_test)
        return replace(self, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                       class_names=tuple(self.class_names[c] for c in classes))


def load(name: str = "default", *, fashion_mnist_dir: Path | str = DEBIAN_FASHION_MNIST_DIR
         ) -> Dataset:
    """Load ``"cifar10"``, ``"fashion_mnist"``, ``"default"`` (CIFAR-10, else Fashion-MNIST) or
    ``"mnist"`` (MNIST, else Fashion-MNIST: chapter 6 repeats a figure made on MNIST).

    Under the ``smoke`` profile, Fashion-MNIST falls back to the bundled sample when neither the
    Debian package nor a download can provide it. A damaged file on disk raises
    :class:`DatasetCorruptError` under every profile: the install is broken, and a run on the
    sample would hide it.
    """
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    if name == "cifar10":
        return _load_cifar10()
    notes = []
    if name == "mnist":
        try:
            (x_train, y_train), (x_test, y_test) = _through_keras("mnist")
            return _dataset("mnist", x_train, y_train, x_test, y_test, source="keras.datasets")
        except DatasetUnavailableError:
            notes.append("MNIST could not be downloaded here, so this run uses Fashion-MNIST, "
                         "the same size and shape but harder.")
    if name == "default":
        try:
            return _load_cifar10()
        except DatasetUnavailableError:
            notes.append("CIFAR-10 could not be downloaded here, so this run uses Fashion-MNIST; "
                         "numbers quoted from the source articles refer to CIFAR-10.")
    try:
        ds = _load_fashion_mnist(Path(fashion_mnist_dir))
    except DatasetCorruptError:
        raise
    except DatasetUnavailableError:
        if not profile().is_smoke:
            raise
        ds = _read_fashion_mnist(SAMPLE_DIR, source="the small sample bundled with normlab")
        notes.append("The full Fashion-MNIST is not installed either; the smoke profile uses "
                     "the sample, which only shows that the code runs.")
    return replace(ds, note=" ".join(notes))


def pipeline(x, y, batch_size: int, *, shuffle_seed: int | None = None):
    """A ``tf.data`` pipeline over in-memory images: shuffled when given a seed, batched, float32.

    Explained in chapter 5. Training data is reshuffled every epoch and cast batch by batch, so
    the uint8 arrays are never copied whole; evaluation data (no seed) is cast once and cached.
    Batches are prefetched, so the next one is ready while the model trains on this one.
    """
    batch_size = _count("batch_size", batch_size)
    shuffle_seed = _count("shuffle_seed", shuffle_seed, optional=True)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    tf, _ = import_tensorflow()
    batches = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        batches = batches.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    batches = batches.batch(batch_size).map(lambda images, labels: (tf.cast(images, "float32"), labels),
                                            num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle_seed is None:
        batches = batches.cache()
    return batches.prefetch(tf.data.AUTOTUNE)


def keras_datasets_dir() -> Path:
    """The folder ``keras.datasets`` downloads into, by Keras's own rule: ``$KERAS_HOME/datasets``,
    else ``~/.keras/datasets`` (``/tmp/.keras/datasets`` where the home folder is read-only)."""
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"]) / "datasets"
    home = Path.home() if os.access(Path.home(), os.W_OK) else Path("/tmp")
    return home / ".keras" / "datasets"


def _load_cifar10() -> Dataset:
    (x_train, y_train), (x_test, y_test) = _through_keras("cifar10")
    return _dataset("cifar10", x_train, y_train, x_test, y_test, source="keras.datasets")


def _load_fashion_mnist(directory: Path) -> Dataset:
    if all((directory / f).is_file() for f in _FASHION_FILES):
        return _read_fashion_mnist(directory, source="offline copy from the Debian package "
                                                     "dataset-fashion-mnist")
    (x_train, y_train), (x_test, y_test) = _through_keras("fashion_mnist")
    return _dataset("fashion_mnist", x_train, y_train, x_test, y_test, source="keras.datasets")


def _read_fashion_mnist(directory: Path, source: str) -> Dataset:
    x_train, y_train, x_test, y_test = (_read_idx(directory / f) for f in _FASHION_FILES)
    return _dataset("fashion_mnist", x_train, y_train, x_test, y_test, source=source)


def _dataset(key, x_train, y_train, x_test, y_test, source) -> Dataset:
    """The book's layout whatever the loader gives: images ``(N, H, W, C)``, labels ``(N,)``."""
    def images(x):
        return x[..., None] if x.ndim == 3 else x

    def labels(y):
        return np.asarray(y).reshape(-1).astype(np.int64)

    return Dataset(key, images(x_train), labels(y_train), images(x_test), labels(y_test),
                   source=source)


def _read_idx(path: Path) -> np.ndarray:
    """Read one gzip IDX file (the MNIST family's format): magic, sizes, then raw uint8.

    A damaged file raises :class:`DatasetCorruptError` naming it and the fix, rather than what
    gzip or NumPy would say about its bytes."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise _corrupt(path, f"it is not a complete gzip file ({error})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise _corrupt(path, "it is not an unsigned-byte IDX file (wrong magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise _corrupt(path, "its IDX header is truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = len(raw) - 4 - 4 * ndim
    if size != np.prod(shape, dtype=np.int64):
        raise _corrupt(path, f"its header announces {'x'.join(map(str, shape))} = "
                             f"{np.prod(shape, dtype=np.int64)} bytes of data but it holds {size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _corrupt(path: Path, problem: str) -> DatasetCorruptError:
    """The error for a damaged dataset file, with the fix for where it lies."""
    if path.parent == DEBIAN_FASHION_MNIST_DIR:
        fix = "reinstall the package that provides it (`apt-get install --reinstall dataset-fashion-mnist`)"
    elif path.parent == SAMPLE_DIR:
        fix = "reinstall normlab, whose bundled sample it is"
    else:
        fix = "replace it with a good copy, or delete the folder's copy of the dataset"
    return DatasetCorruptError(f"Could not read {path}: {problem}. The file is damaged; to fix it, {fix}, "
                               "and run again.")


def write_sample(source: Path | str, target: Path | str, n_train: int = 1000, n_test: int = 500,
                 seed: int = 0) -> None:
    """Write the bundled sample: equally many images of each class, drawn from the full files.

    ``write_sample(DEBIAN_FASHION_MNIST_DIR, SAMPLE_DIR)`` remakes the committed files exactly.
    """
    n_train, n_test = _count("n_train", n_train), _count("n_test", n_test)
    full = _read_fashion_mnist(Path(source), source="")
    rng = np.random.default_rng(_count("seed", seed))
    splits = ((full.x_train, full.y_train, n_train), (full.x_test, full.y_test, n_test))
    arrays = []
    for x, y, n in splits:
        picked = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), n // 10, replace=False)
                                         for c in range(10)]))
        arrays += [x[picked, ..., 0], y[picked].astype(np.uint8)]
    Path(target).mkdir(parents=True, exist_ok=True)
    for name, array in zip(_FASHION_FILES, arrays, strict=True):
        _write_idx(Path(target) / name, array)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write uint8 data as gzip IDX, byte for byte the same on every run (no time stamp)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), 9, mtime=0))


def _reachable(url: str, timeout: float = 10) -> bool:
    """True when the server answers at all (an HTTP error is an answer); False offline."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _through_keras(key: str):
    """Call ``keras.datasets.<key>.load_data()`` and turn any failure into one clear paragraph.

    When the origin answers, Keras's own progress bar shows the download. When it does not, the
    loader runs silently: a copy Keras cached earlier still loads, and an offline machine does
    not print a "Downloading data from ..." line that leads nowhere.
    """
    _, keras = import_tensorflow()
    loader = getattr(keras.datasets, key).load_data
    online = _reachable(ORIGINS[key])
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        with contextlib.nullcontext() if online else contextlib.redirect_stdout(io.StringIO()):
            return loader()
    except Exception as error:  # urllib, tarfile, hash mismatch ... all mean "not available"
        folder = keras_datasets_dir()
        if folder.is_relative_to(Path.home()):
            folder = "~" / folder.relative_to(Path.home())
        shown = str(folder)
        raise DatasetUnavailableError(
            f"Could not load {TITLES[key]}: keras.datasets.{key}.load_data() failed with "
            f"{type(error).__name__}: {error}. Keras downloads the dataset on first use into "
            f"{shown}, so this usually means the machine is offline or the download was "
            "interrupted. To fix it, connect to the internet and run again (delete a "
            f"half-downloaded file in {shown} first), or install Fashion-MNIST for offline use "
            "(`apt-get install dataset-fashion-mnist`), or run the small version of the book, "
            "which works with the sample bundled with normlab (NORMLAB_PROFILE=smoke)."
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)


def class_grouped_pipeline(x, y, batch_size: int, classes_per_batch: int, *, shuffle_seed: int):
    """Training batches that each hold at most ``classes_per_batch`` classes: data that are not
    i.i.d. within a batch, as when examples arrive grouped by label (chapter 8).

    Each class's examples are shuffled once and cut into chunks of ``batch_size //
    classes_per_batch``; every epoch the chunks are reshuffled and taken ``classes_per_batch`` at
    a time. Examples left over from a class, and a last incomplete batch, are dropped, so every
    batch is full.
    """
    batch_size = _count("batch_size", batch_size)
    classes_per_batch = _count("classes_per_batch", classes_per_batch)
    shuffle_seed = _count("shuffle_seed", shuffle_seed)
    if batch_size < 1 or classes_per_batch < 1 or batch_size % classes_per_batch:
        raise ValueError(f"classes_per_batch={classes_per_batch} must divide batch_size={batch_size}")
    tf, _ = import_tensorflow()
    per_chunk = batch_size // classes_per_batch
    rng = np.random.default_rng(shuffle_seed)
    chunks = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        chunks.extend(members[: len(members) // per_chunk * per_chunk].reshape(-1, per_chunk))
    if len(chunks) < classes_per_batch:
        raise ValueError(f"too few examples for one batch of {batch_size}")
    images, labels = tf.constant(x), tf.constant(y)

    def gather(indices):
        indices = tf.reshape(indices, [-1])
        return tf.cast(tf.gather(images, indices), "float32"), tf.gather(labels, indices)

    return (tf.data.Dataset.from_tensor_slices(np.stack(chunks))
            .shuffle(len(chunks), seed=shuffle_seed, reshuffle_each_iteration=True)
            .batch(classes_per_batch, drop_remainder=True)
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))
