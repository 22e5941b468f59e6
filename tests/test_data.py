import gzip
import urllib.error

import numpy as np
import pytest

from normlab import data, runtime

_, keras = runtime.import_tensorflow()


def write_idx(path, array):
    """Write an array in the IDX format the MNIST family uses (what the Debian package ships)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion_mnist(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 12),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 5),
    }
    for name, array in arrays.items():
        write_idx(tmp_path / name, array)
    return tmp_path, arrays


@pytest.fixture
def offline(monkeypatch):
    """Make every keras.datasets download fail the way it does without a network."""

    def no_network():
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", no_network)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", no_network)


def test_fashion_mnist_is_read_offline_from_idx_files(tiny_fashion_mnist, offline):
    directory, arrays = tiny_fashion_mnist
    ds = data.load("fashion_mnist", fashion_mnist_dir=directory)
    assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert ds.y_train.dtype == np.int64
    assert "Debian package" in ds.describe() and "12 train / 5 test" in ds.describe()


def test_default_falls_back_to_fashion_mnist_and_says_so(tiny_fashion_mnist, offline):
    ds = data.load("default", fashion_mnist_dir=tiny_fashion_mnist[0])
    assert ds.key == "fashion_mnist" and ds.title == "Fashion-MNIST"
    assert "CIFAR-10 could not be downloaded" in ds.describe()


def test_missing_dataset_is_one_clear_paragraph(tmp_path, offline):
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("cifar10")
    message = str(info.value)
    assert "Could not load CIFAR-10" in message and "Name or service not known" in message
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message
    assert info.value.__suppress_context__ and info.value.__cause__ is None  # no urllib traceback
    with pytest.raises(data.DatasetUnavailableError, match="Could not load Fashion-MNIST"):
        data.load("fashion_mnist", fashion_mnist_dir=tmp_path)


def test_cifar10_through_keras_is_reshaped_to_the_book_layout(monkeypatch):
    x = np.zeros((3, 32, 32, 3), np.uint8)
    y = np.array([[1], [2], [3]], np.uint8)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: ((x, y), (x[:2], y[:2])))
    ds = data.load("default")
    assert ds.key == "cifar10" and ds.note == ""
    assert ds.y_train.tolist() == [1, 2, 3] and ds.y_train.dtype == np.int64
    assert ds.class_names[3] == "cat"


def test_unknown_name_is_rejected():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'.*fashion_mnist"):
        data.load("mnist")


def test_bad_idx_file_is_rejected(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        data._read_idx(path)


def test_subsample_is_seeded_and_validated(tiny_fashion_mnist, offline):
    ds = data.load("fashion_mnist", fashion_mnist_dir=tiny_fashion_mnist[0])
    small = ds.subsample(4, 2, seed=1)
    assert len(small.x_train) == 4 and len(small.y_test) == 2
    np.testing.assert_array_equal(small.x_train, ds.subsample(4, 2, seed=1).x_train)
    assert len(ds.subsample(100).x_train) == 12
    with pytest.raises(ValueError, match="at least 1"):
        ds.subsample(0)


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_the_debian_package_gives_the_real_fashion_mnist(offline):
    ds = data.load("fashion_mnist")
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10


def test_pipeline_batches_casts_and_reshuffles_every_epoch():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    y = np.arange(10)
    batches = data.pipeline(x, y, 4, shuffle_seed=0)
    epochs = [[labels.numpy().tolist() for _, labels in batches] for _ in range(2)]
    assert [len(b) for b in epochs[0]] == [4, 4, 2]
    assert sorted(label for batch in epochs[0] for label in batch) == list(range(10))
    assert epochs[0] != epochs[1]
    images, labels = next(iter(batches))
    assert images.dtype == "float32" and np.array_equal(images.numpy().ravel(), labels.numpy())


def test_evaluation_pipeline_keeps_the_order():
    x = np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1)
    labels = [lab.numpy().tolist() for _, lab in data.pipeline(x, np.arange(5), 2)]
    assert labels == [[0, 1], [2, 3], [4]]


def test_pipeline_rejects_an_empty_batch():
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        data.pipeline(np.zeros((2, 1, 1, 1), np.uint8), np.zeros(2), 0)
