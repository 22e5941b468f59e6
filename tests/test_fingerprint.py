import textwrap

import numpy as np
import pytest

from normlab import fingerprint

HELPERS = '''
"""A module."""
from normlab.base import scale

LIMIT = 3


def f(x):
    """Why f."""
    return scale(x) + LIMIT


def g(x):
    return x - 1
'''
BASE = '''
def scale(x):
    return 2 * x
'''


def package(helpers=HELPERS, base=BASE):
    names = {"helpers", "base"}
    return {"helpers": fingerprint.parse_module(textwrap.dedent(helpers), names),
            "base": fingerprint.parse_module(textwrap.dedent(base), names)}


def code(root, **sources):
    return fingerprint.code(root, package=package(**sources))


def test_a_definition_reaches_what_it_names_in_normlab():
    assert fingerprint.reached("helpers.f", package=package()) == [
        "base", "base.scale", "helpers", "helpers.LIMIT", "helpers.f"]
    assert "base.scale" not in fingerprint.reached("helpers.g", package=package())


def test_docstrings_and_comments_change_nothing():
    edited = HELPERS.replace('"""Why f."""', '"""Reworded."""\n    # a comment')
    edited = edited.replace('"""A module."""', '"""Another module docstring."""')
    assert code("helpers.f", helpers=edited) == code("helpers.f")


def test_a_code_change_changes_exactly_what_reaches_it():
    assert code("helpers.f", base=BASE.replace("2 * x", "3 * x")) != code("helpers.f")
    assert code("helpers.g", base=BASE.replace("2 * x", "3 * x")) == code("helpers.g")
    assert code("helpers.f", helpers=HELPERS.replace("LIMIT = 3", "LIMIT = 4")) != code("helpers.f")
    assert code("helpers.f", helpers=HELPERS.replace("x - 1", "x - 2")) == code("helpers.f")


def test_chapter_roots_follow_the_chapter_imports_and_skip_ipython_lines():
    source = ("!pip install normlab\n%matplotlib inline\nfrom normlab import helpers\n"
              "from normlab.base import scale as s\nhelpers.g(s(1))\n")
    assert fingerprint.chapter_roots(source, package=package()) == [
        "base.scale", "helpers", "helpers.g"]


def test_a_chapter_reaches_the_builder_its_run_configs_name():
    models = 'BUILDERS = ("net",)\n\ndef net():\n    return 1\n\ndef other():\n    return 2\n'
    names = {"models", "train"}
    pkg = {"models": fingerprint.parse_module(models, names),
           "train": fingerprint.parse_module("def run(model):\n    return model\n", names)}
    source = 'from normlab import train\ntrain.run(model="net")\nprint("other", name="net")\n'
    assert fingerprint.chapter_roots(source, package=pkg) == ["models.net", "train", "train.run"]


def test_the_real_package_is_covered_per_definition():
    assert "train.run" not in fingerprint.reached("page.glue")
    run = fingerprint.reached("train._train", "models.lenet5")
    assert {"models.norm_layer", "layers.FusedBatchNorm", "runtime.set_seed", "data.pipeline"} <= set(run)
    assert "plots.band" not in run and "runtime.setup" not in run


def test_unknown_roots_are_refused():
    with pytest.raises(ValueError, match="not in normlab"):
        fingerprint.reached("nowhere.f")


def test_arrays_hash_contents_not_only_shapes():
    a = np.zeros((4, 3), dtype=np.uint8)
    b = a.copy()
    b[0, 0] = 1
    assert fingerprint.arrays(a) == fingerprint.arrays(a.copy())
    assert fingerprint.arrays(a) != fingerprint.arrays(b)
    assert fingerprint.arrays(a) != fingerprint.arrays(a.astype(np.int64))


def chapter_class(body: str) -> type:
    """A class as a chapter defines it: in ``__main__``, from source run in a cell."""
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(body), namespace)
    return namespace["Scale"]


def test_a_chapter_class_is_hashed_by_what_its_methods_do():
    one = chapter_class("""
        class Scale:
            def call(self, x):
                return 2 * x
        """)
    moved = chapter_class("""


        class Scale:  # defined further down a cell, with a comment
            def call(self, x):
                return 2 * x
        """)
    other = chapter_class("""
        class Scale:
            def call(self, x):
                return 3 * x
        """)
    assert fingerprint.classes(one) == fingerprint.classes(moved) != fingerprint.classes(other)


def test_library_classes_are_left_to_the_versions_and_normlab_ones_hashed_by_source():
    from normlab import layers

    assert fingerprint.classes(int) == fingerprint.classes()
    assert fingerprint.classes(layers.FusedBatchNorm) != fingerprint.classes(layers.GhostBatchNorm)


def test_batches_hash_every_batch_in_order():
    import tensorflow as tf

    x = np.arange(8, dtype="float32")
    assert fingerprint.batches(tf.data.Dataset.from_tensor_slices(x).batch(4)) == \
        fingerprint.batches(tf.data.Dataset.from_tensor_slices(x.copy()).batch(4))
    assert fingerprint.batches(tf.data.Dataset.from_tensor_slices(x).batch(4)) != \
        fingerprint.batches(tf.data.Dataset.from_tensor_slices(x[::-1].copy()).batch(4))
