import gzip
import http.server
import socket
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from normlab import data, runtime

_, keras = runtime.import_tensorflow()
write_idx = data._write_idx


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
        print("Downloading data from https://example.invalid")  # what Keras prints first
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(data, "_reachable", lambda url: False)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", no_network)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_network)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", no_network)


def test_fashion_mnist_is_read_offline_from_idx_files(tiny_fashion_mnist, offline):
    directory, arrays = tiny_fashion_mnist
    ds = data.load("fashion_mnist", fashion_mnist_dir=directory)
    assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert ds.y_train.dtype == np.int64
    assert "Debian package" in ds.describe() and "28x28x1 images: 12 train, 5 test" in ds.describe()
    assert max(len(line) for line in ds.describe().splitlines()) <= 78  # fits the page


def test_default_falls_back_to_fashion_mnist_and_says_so(tiny_fashion_mnist, offline):
    ds = data.load("default", fashion_mnist_dir=tiny_fashion_mnist[0])
    assert ds.key == "fashion_mnist" and ds.title == "Fashion-MNIST"
    assert "CIFAR-10 could not be downloaded" in ds.describe()


def test_missing_dataset_is_one_clear_paragraph(tmp_path, offline, monkeypatch, capsys):
    monkeypatch.setenv(runtime.PROFILE_VARIABLE, "full")
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("cifar10")
    message = str(info.value)
    assert "Could not load CIFAR-10" in message and "Name or service not known" in message
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message
    assert "NORMLAB_PROFILE=smoke" in message
    assert info.value.__suppress_context__ and info.value.__cause__ is None  # no urllib traceback
    with pytest.raises(data.DatasetUnavailableError, match="Could not load Fashion-MNIST"):
        data.load("fashion_mnist", fashion_mnist_dir=tmp_path)
    assert capsys.readouterr().out == ""  # offline, Keras's "Downloading ..." line is not shown


def test_the_message_names_the_folder_keras_really_uses(tmp_path, offline, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    assert data.keras_datasets_dir() == tmp_path / "keras-home" / "datasets"
    with pytest.raises(data.DatasetUnavailableError, match=f"into {tmp_path / 'keras-home' / 'datasets'},"):
        data.load("cifar10")


def test_the_keras_folder_follows_keras_own_rule():
    from keras.src.backend.config import keras_home  # private: used here only as an oracle

    assert data.keras_datasets_dir() == Path(keras_home()) / "datasets"


def test_a_download_shows_keras_progress_when_the_origin_answers(monkeypatch, capsys):
    def downloading():
        print("Downloading data from https://www.cs.toronto.edu/... 170498071/170498071 ━━━━")
        return (np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 1))), (
            np.zeros((1, 32, 32, 3), np.uint8), np.zeros((1, 1)))

    monkeypatch.setattr(data, "_reachable", lambda url: True)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", downloading)
    data.load("cifar10")
    assert "Downloading data from" in capsys.readouterr().out


def test_reachable_tells_an_answering_server_from_a_closed_port():
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)  # an HTTP error is still an answer
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.handle_request, daemon=True).start()
    assert data._reachable(f"http://127.0.0.1:{server.server_port}/x.tar.gz", timeout=5)
    server.server_close()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert not data._reachable(f"http://127.0.0.1:{closed}/x.tar.gz", timeout=5)


def test_smoke_profile_falls_back_to_the_bundled_sample(tmp_path, offline, monkeypatch):
    monkeypatch.setenv(runtime.PROFILE_VARIABLE, "smoke")
    ds = data.load("default", fashion_mnist_dir=tmp_path)  # an empty folder: no Debian package
    assert ds.key == "fashion_mnist" and ds.x_train.shape == (1000, 28, 28, 1)
    assert ds.x_test.shape == (500, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [100] * 10 and np.bincount(ds.y_test).tolist() == [50] * 10
    assert "sample bundled with normlab" in ds.describe() and "CIFAR-10 could not" in ds.describe()
    monkeypatch.setenv(runtime.PROFILE_VARIABLE, "full")  # never for the real experiments
    with pytest.raises(data.DatasetUnavailableError):
        data.load("default", fashion_mnist_dir=tmp_path)


def test_the_bundled_sample_is_small():
    assert sum(p.stat().st_size for p in data.SAMPLE_DIR.iterdir()) < 2_000_000
    assert (data.SAMPLE_DIR / "LICENSE").read_text().startswith("The MIT License")


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_the_bundled_sample_is_remade_byte_for_byte_from_the_debian_files(tmp_path):
    data.write_sample(data.DEBIAN_FASHION_MNIST_DIR, tmp_path)
    for name in data._FASHION_FILES:
        assert (tmp_path / name).read_bytes() == (data.SAMPLE_DIR / name).read_bytes(), name


def test_cifar10_through_keras_is_reshaped_to_the_book_layout(monkeypatch):
    x = np.zeros((3, 32, 32, 3), np.uint8)
    y = np.array([[1], [2], [3]], np.uint8)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: ((x, y), (x[:2], y[:2])))
    ds = data.load("default")
    assert ds.key == "cifar10" and ds.note == ""
    assert ds.y_train.tolist() == [1, 2, 3] and ds.y_train.dtype == np.int64
    assert ds.class_names[3] == "cat"


def test_mnist_through_keras_or_else_fashion_mnist_saying_so(tiny_fashion_mnist, offline,
                                                               monkeypatch):
    ds = data.load("mnist", fashion_mnist_dir=tiny_fashion_mnist[0])
    assert ds.key == "fashion_mnist" and "MNIST could not be downloaded" in ds.describe()
    x = np.zeros((3, 28, 28), np.uint8)
    monkeypatch.setattr(keras.datasets.mnist, "load_data",
                        lambda: ((x, np.array([7, 1, 0])), (x[:1], np.array([4]))))
    digits = data.load("mnist")
    assert digits.title == "MNIST" and digits.note == "" and digits.x_train.shape == (3, 28, 28, 1)
    assert digits.class_names[7] == "7"


def test_unknown_name_is_rejected():
    with pytest.raises(ValueError, match=r"unknown dataset 'emnist'.*fashion_mnist"):
        data.load("emnist")


def test_bad_idx_file_is_rejected(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(data.DatasetCorruptError, match="not an unsigned-byte IDX file"):
        data._read_idx(path)


def damage(path: Path, how: str) -> None:
    """Spoil one IDX file the ways a disk, a copy or a download can."""
    raw = gzip.decompress(path.read_bytes())
    if how == "not gzip":
        path.write_bytes(b"this is not a gzip file\n")
    elif how == "truncated gzip":
        path.write_bytes(path.read_bytes()[:-30])
    elif how == "truncated data":
        path.write_bytes(gzip.compress(raw[:-3]))
    elif how == "truncated header":
        path.write_bytes(gzip.compress(raw[:6]))
    elif how == "wrong magic":
        path.write_bytes(gzip.compress(b"\x00\x00\x0d" + raw[3:]))
    elif how == "empty":
        path.write_bytes(gzip.compress(b""))


@pytest.mark.parametrize("how, problem", [
    ("not gzip", "not a complete gzip file"), ("truncated gzip", "not a complete gzip file"),
    ("truncated data", "header announces 12x28x28 = 9408 bytes of data but it holds 9405"),
    ("truncated header", "IDX header is truncated"), ("wrong magic", "not an unsigned-byte IDX file"),
    ("empty", "not an unsigned-byte IDX file"),
])
@pytest.mark.parametrize("active", ["full", "smoke"])
def test_a_damaged_dataset_file_is_named_with_the_fix_under_every_profile(
        tiny_fashion_mnist, offline, monkeypatch, how, problem, active):
    directory, _ = tiny_fashion_mnist
    path = directory / "train-images-idx3-ubyte.gz"
    damage(path, how)
    monkeypatch.setenv(runtime.PROFILE_VARIABLE, active)  # smoke: no fallback to the sample either
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("fashion_mnist", fashion_mnist_dir=directory)
    message = str(info.value)
    assert message.startswith(f"Could not read {path}: ") and problem in message
    assert "The file is damaged; to fix it, replace it with a good copy" in message
    error = info.value  # no gzip or NumPy traceback chained to it
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_a_damaged_file_names_the_package_or_normlab_to_reinstall(tmp_path):
    for folder, fix in ((data.DEBIAN_FASHION_MNIST_DIR, "apt-get install --reinstall dataset-fashion-mnist"),
                        (data.SAMPLE_DIR, "reinstall normlab")):
        assert fix in str(data._corrupt(folder / "t10k-labels-idx1-ubyte.gz", "it is truncated"))


def test_a_validation_split_holds_out_the_last_training_images(tiny_fashion_mnist, offline):
    ds = data.load("fashion_mnist", fashion_mnist_dir=tiny_fashion_mnist[0])
    split = ds.validation_split(4)
    np.testing.assert_array_equal(split.x_test, ds.x_train[-4:])
    np.testing.assert_array_equal(split.y_train, ds.y_train[:-4])
    assert "the last 4 training images" in split.note and split.title == ds.title
    for bad in (0, len(ds.x_train), 2.5):
        with pytest.raises(ValueError, match="n_validation"):
            ds.validation_split(bad)


def test_subsample_is_seeded_and_validated(tiny_fashion_mnist, offline):
    ds = data.load("fashion_mnist", fashion_mnist_dir=tiny_fashion_mnist[0])
    small = ds.subsample(4, 2, seed=1)
    assert len(small.x_train) == 4 and len(small.y_test) == 2
    np.testing.assert_array_equal(small.x_train, ds.subsample(4, 2, seed=1).x_train)
    assert len(ds.subsample(100).x_train) == 12
    with pytest.raises(ValueError, match="at least 1"):
        ds.subsample(0)
    for argument, values in (("n_train", (2.5, "4", True)), ("n_test", (2.5,)), ("seed", (None, 1.0))):
        for value in values:
            with pytest.raises(ValueError, match=f"^{argument} must be an int, got {value!r}$"):
                ds.subsample(**{"n_train": 4, argument: value})
    assert len(ds.subsample(np.int64(4)).x_train) == 4


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_only_classes_keeps_and_relabels_some_classes():
    rng = np.random.default_rng(0)
    ds = data.Dataset("fashion_mnist", rng.integers(0, 256, (60, 4, 4, 1)), np.arange(60) % 10,
                      rng.integers(0, 256, (20, 4, 4, 1)), np.arange(20) % 10, "test")
    shoes = ds.only_classes([9, 7, 5])  # ankle boot, sneaker, sandal
    assert shoes.class_names == ("ankle boot", "sneaker", "sandal")
    assert len(shoes.x_train) == np.isin(ds.y_train, [5, 7, 9]).sum()
    np.testing.assert_array_equal(shoes.x_train[shoes.y_train == 0], ds.x_train[ds.y_train == 9])
    assert set(shoes.y_test) <= {0, 1, 2} and shoes.describe().count("3 classes") == 1
    with pytest.raises(ValueError, match="distinct labels of 10 classes"):
        ds.only_classes([1, 1])
    with pytest.raises(ValueError, match="distinct labels of 10 classes"):
        ds.only_classes([10])
    for wrong in (None, [1.0, 2.0], "12"):
        with pytest.raises(ValueError, match="distinct labels of 10 classes"):
            ds.only_classes(wrong)
    assert ds.only_classes(np.array([9, 7])).class_names == ("ankle boot", "sneaker")


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


@pytest.mark.parametrize("argument, value", [("batch_size", 2.5), ("batch_size", "2"), ("batch_size", None),
                                             ("shuffle_seed", 0.5), ("shuffle_seed", "0")])
def test_pipelines_name_a_count_or_seed_that_is_not_an_int(argument, value):
    x, y = np.zeros((40, 1, 1, 1), np.uint8), np.arange(40) % 2
    with pytest.raises(ValueError, match=f"^{argument} must be an int, got {value!r}$"):
        data.pipeline(x, y, **{"batch_size": 2, "shuffle_seed": 0, argument: value})
    with pytest.raises(ValueError, match=f"^{argument} must be an int, got {value!r}$"):
        data.class_grouped_pipeline(x, y, **{"batch_size": 4, "classes_per_batch": 2, "shuffle_seed": 0,
                                             argument: value})
    with pytest.raises(ValueError, match=r"^classes_per_batch must be an int, got 2.0$"):
        data.class_grouped_pipeline(x, y, 4, 2.0, shuffle_seed=0)
    assert [len(labels) for _, labels in data.pipeline(x, y, np.int64(16))] == [16, 16, 8]


def test_class_grouped_batches_hold_few_classes_and_are_full():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 400)
    x = rng.integers(0, 255, (400, 4, 4, 1)).astype("uint8")
    batches = list(data.class_grouped_pipeline(x, y, 16, 2, shuffle_seed=0))
    assert batches and all(len(labels) == 16 for _, labels in batches)
    assert all(len(np.unique(labels)) <= 2 for _, labels in batches)
    assert batches[0][0].dtype == "float32"
    with pytest.raises(ValueError, match="classes_per_batch"):
        data.class_grouped_pipeline(x, y, 16, 3, shuffle_seed=0)


def test_pooled_images_are_block_means_with_an_uneven_side_cropped():
    x = np.arange(2 * 5 * 4 * 1, dtype=np.uint8).reshape(2, 5, 4, 1)
    ds = data.Dataset("fashion_mnist", x, np.zeros(2, int), x, np.zeros(2, int), "test")
    pooled = ds.pooled(2)
    assert pooled.x_train.shape == (2, 2, 2, 1) and pooled.x_train.dtype == np.uint8
    assert pooled.x_train[0, 0, 0, 0] == round(np.mean([0, 1, 4, 5]))  # rows 0-1, columns 0-1
    assert pooled.x_test.shape == (2, 2, 2, 1) and "2x2" in pooled.note
    np.testing.assert_array_equal(ds.pooled(1).x_train, x)
    for factor in (0, 6):
        with pytest.raises(ValueError, match="factor"):
            ds.pooled(factor)
