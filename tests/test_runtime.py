import logging
import subprocess
import sys

import pytest

from normlab import runtime


def test_profile_defaults_to_full(monkeypatch):
    monkeypatch.delenv(runtime.PROFILE_VARIABLE, raising=False)
    assert runtime.profile().name == "full"


@pytest.mark.parametrize("value, name", [("smoke", "smoke"), (" FULL ", "full"), ("", "full")])
def test_profile_is_read_from_the_environment(monkeypatch, value, name):
    monkeypatch.setenv(runtime.PROFILE_VARIABLE, value)
    assert runtime.profile().name == name


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(runtime.PROFILE_VARIABLE, "fast")
    with pytest.raises(ValueError, match=r"'fast' is not a known profile.*full, smoke"):
        runtime.profile()


def test_pick_chooses_by_profile():
    assert runtime.Profile("full").pick(full=10, smoke=1) == 10
    assert runtime.Profile("smoke").pick(full=10, smoke=1) == 1
    assert runtime.Profile("smoke").is_smoke


def test_the_paper_profile_takes_its_own_value_where_a_chapter_gives_one_else_full():
    paper = runtime.Profile("paper")
    assert paper.pick(full=10, smoke=1, paper=100) == 100 and paper.pick(full=10, smoke=1) == 10
    table = paper.table(epochs=(10, 1, 100), seeds=([0, 1, 2], [0, 1]))
    assert (table.epochs, table.seeds) == (100, [0, 1, 2])
    assert runtime.Profile("full").table(epochs=(10, 1, 100)).epochs == 10
    with pytest.raises(ValueError, match="pair or a"):
        paper.table(epochs=(10,))


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed"):
        runtime.set_seed(seed)


def test_seeding_makes_keras_repeatable():
    _, keras = runtime.import_tensorflow()
    runtime.set_seed(3)
    a = keras.random.normal((4,)).numpy()
    runtime.set_seed(3)
    b = keras.random.normal((4,)).numpy()
    assert (a == b).all()


def test_import_and_setup_print_no_tensorflow_noise():
    """The first lines of every chapter must leave stderr empty (nbval compares it)."""
    code = "from normlab import runtime, layers; runtime.setup(0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr == ""
    assert result.stdout.startswith("profile: ")
    assert "TensorFlow" in result.stdout


def test_not_on_colab_here():
    assert runtime.on_colab() is False


def test_tensorflow_python_warnings_are_silenced():
    tf, _ = runtime.import_tensorflow()
    assert tf.get_logger().level == logging.ERROR


@pytest.mark.parametrize("installed, minimum", [
    ({"tensorflow": "2.21.0", "keras": "3.15.1"}, {"keras": "3.14"}),
    ({"tensorflow": "2.19.1", "keras": "3.10.0"}, {}),
    ({"tensorflow": "2.20.0rc1", "keras": "3.14.0"}, {"keras": "3.14"}),
])
def test_new_enough_versions_pass(installed, minimum):
    runtime.require(installed, **minimum)


def test_an_old_keras_stops_the_chapter_with_one_clear_sentence():
    with pytest.raises(runtime.VersionError) as info:
        runtime.require({"tensorflow": "2.21.0", "keras": "3.10.0"}, keras="3.14")
    message = str(info.value)
    assert message.startswith("This chapter needs Keras 3.14 or newer, but Keras 3.10.0 is installed")
    assert 'pip install --upgrade "keras>=3.14"' in message and "Restart session" in message
    assert "\n" not in message


def test_the_book_wide_minimum_applies_to_every_chapter():
    with pytest.raises(runtime.VersionError, match=r"needs TensorFlow .* but TensorFlow 2\.15\.1 is"):
        runtime.require({"tensorflow": "2.15.1", "keras": "3.15.1"})
    with pytest.raises(ValueError, match="not jax"):
        runtime.require({"tensorflow": "2.21.0", "keras": "3.15.1"}, jax="0.4")


def test_the_installed_versions_meet_the_book_minimum():
    runtime.require()


def test_setup_returns_tensorflow_keras_and_the_profile_with_tf32_off():
    import matplotlib

    tf, keras, profile = runtime.setup(0)
    assert profile.name == "smoke" and keras.__version__ and tf.__version__
    assert tf.config.experimental.tensor_float_32_execution_enabled() is False
    assert matplotlib.rcParams["figure.facecolor"] == "white"
    runtime.setup(0, tf32=True)
    assert tf.config.experimental.tensor_float_32_execution_enabled() is True
    tf.config.experimental.enable_tensor_float_32_execution(False)


def test_profile_tables_pick_one_column():
    table = runtime.Profile("smoke").table(epochs=(10, 2), seeds=([0, 1, 2], [0]))
    assert (table.epochs, table.seeds) == (2, [0])
    assert runtime.Profile("full").table(epochs=(10, 2)).epochs == 10
    with pytest.raises(ValueError, match="pair"):
        runtime.Profile("full").table(epochs=10)


def run_python(code):
    """Run ``code`` in a fresh interpreter: TensorFlow fixes its devices once per process."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_split_cpu_makes_logical_devices_for_a_mirrored_strategy():
    code = """
from normlab import runtime
devices = runtime.split_cpu(2)
from normlab import layers
tf, keras, profile = runtime.setup(0)
strategy = tf.distribute.MirroredStrategy(devices)
print(devices, strategy.num_replicas_in_sync, runtime.split_cpu(2) == devices)
"""
    result = run_python(code)
    assert result.stdout.splitlines()[-1] == "['/device:CPU:0', '/device:CPU:1'] 2 True"
    assert result.stderr == ""


def test_split_cpu_restarts_a_runtime_that_has_already_started():
    """As in an IPython start-up file that ran TensorFlow before the chapter's setup cell."""
    code = """
from normlab import runtime, layers
tf, keras = runtime.import_tensorflow()
tf.constant(1.0).numpy()
devices = runtime.split_cpu(3)
with tf.device(devices[2]):
    total = tf.reduce_sum(tf.ones(4))
print(len(devices), float(total), total.device.endswith("CPU:2"))
"""
    result = run_python(code)
    assert result.stdout.splitlines()[-1] == "3 4.0 True"
    assert result.stderr == ""


@pytest.mark.parametrize("count", [0, -1, 2.0, True, "2"])
def test_split_cpu_rejects_a_bad_count(count):
    with pytest.raises(ValueError, match="positive int"):
        runtime.split_cpu(count)


def test_quiet_silences_file_descriptor_2_only_inside_the_block(capfd):
    import os

    with runtime.quiet():
        os.write(2, b"a C++ notice\n")
    os.write(2, b"after the block\n")
    assert capfd.readouterr().err == "after the block\n"
