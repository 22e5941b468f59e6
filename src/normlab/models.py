"""The book's networks, with the normalization layers as parameters.

:func:`lenet5` is explained in chapter 5 ("LeNet-5 experiments"). The source article builds two
LeNet-5 classes; it is both of them, with their bugs fixed, and every difference between them
(input normalization, the normalization layer, its place next to the activation, dropout) is an
argument, so an experiment changes one thing at a time. :func:`small_cnn` is the two-convolution
network of chapters 1 and 4, small enough to train many times in a few minutes.
"""

from __future__ import annotations

from normlab.layers import FusedBatchNorm
from normlab.runtime import import_tensorflow

tf, keras = import_tensorflow()

BUILDERS = ("lenet5", "small_cnn")  # the models normlab.train can train, by name
NORMS = ("none", "batch", "batch_fused", "layer", "group")
OUTPUTS = ("logits", "sigmoid")
PLACEMENTS = ("before", "after")
DROPOUT_AT = ("hidden", "head")
GROUPS = 2  # divides every LeNet-5 width: 6, 16, 120 and 84


def norm_layer(kind: str, rank: int, name: str, momentum: float = 0.99):
    """A fresh normalization layer for a rank-``rank`` activation (4: conv, 2: dense), or None.

    ``batch`` is Keras's layer, whose moving averages use ``momentum``; ``batch_fused`` the same
    with TensorFlow's fused kernel on conv activations; ``layer`` normalizes each example over all
    its features (height, width and channels for a conv activation); ``group`` over groups of
    channels.
    """
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")
    if kind == "none":
        return None
    if kind == "batch_fused" and rank == 4:
        return FusedBatchNorm(momentum=momentum, name=name)
    if kind in ("batch", "batch_fused"):
        return keras.layers.BatchNormalization(momentum=momentum, name=name)
    if kind == "layer":
        return keras.layers.LayerNormalization(axis=list(range(1, rank)), name=name)
    return keras.layers.GroupNormalization(groups=GROUPS, name=name)


def lenet5(input_shape, num_classes: int = 10, *, norm: str = "none", placement: str = "before",
           dropout: float = 0.0, dropout_at: str = "hidden", output: str = "logits",
           input_normalization=None, name: str = "lenet5"):
    """LeNet-5 as in the source article: conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> 120 -> 84 -> 10.

    Args:
        input_shape: ``(height, width, channels)`` of one image.
        num_classes: size of the output.
        norm: normalization after every conv and hidden dense layer, one of :data:`NORMS`.
        placement: ``"before"`` the ReLU (the article's order) or ``"after"`` it.
        dropout: dropout rate; 0 means no dropout layers.
        dropout_at: ``"hidden"`` after each hidden dense block (the next block's normalization
            then sees dropped units) or ``"head"`` only before the output layer.
        output: ``"logits"`` (train with ``from_logits=True``) or ``"sigmoid"``, the article's
            baseline: ten independent sigmoids, which Keras's cross-entropy renormalizes to sum
            to one (chapter 5 measures what that costs).
        input_normalization: a layer applied to the raw pixels first, e.g. an adapted
            ``keras.layers.Normalization``; None feeds the pixels as they are (0 to 255).
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if dropout_at not in DROPOUT_AT:
        raise ValueError(f"dropout_at must be one of {', '.join(DROPOUT_AT)}, got {dropout_at!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")

    stack = [keras.Input(shape=tuple(input_shape))]
    if input_normalization is not None:
        stack.append(input_normalization)

    def block(linear, index, rank):
        norm_ = norm_layer(norm, rank, f"norm{index}")
        activation = keras.layers.ReLU(name=f"relu{index}")
        stack.append(linear)
        stack.extend(x for x in ((norm_, activation) if placement == "before" else (activation, norm_))
                     if x is not None)

    block(keras.layers.Conv2D(6, 5, padding="same", name="conv1"), 1, rank=4)
    stack.append(keras.layers.MaxPool2D(2, name="pool1"))
    block(keras.layers.Conv2D(16, 5, padding="same", name="conv2"), 2, rank=4)
    stack.append(keras.layers.MaxPool2D(2, name="pool2"))
    stack.append(keras.layers.Flatten(name="flatten"))
    for index, units in ((3, 120), (4, 84)):
        block(keras.layers.Dense(units, name=f"fc{index - 2}"), index, rank=2)
        if dropout and (dropout_at == "hidden" or index == 4):
            stack.append(keras.layers.Dropout(dropout, name=f"dropout{index - 2}"))
    activation = None if output == "logits" else "sigmoid"
    stack.append(keras.layers.Dense(num_classes, activation=activation, name=output))
    return keras.Sequential(stack, name=name)


def small_cnn(input_shape, num_classes: int = 10, *, norm: str = "none", momentum: float = 0.99,
              input_normalization=None, name: str = "small_cnn"):
    """conv 16@3x3 -> ReLU -> pool -> conv 32@3x3 -> ReLU -> pool -> dense, with logits out.

    Args:
        input_shape: ``(height, width, channels)`` of one image.
        num_classes: size of the output.
        norm: normalization between each conv and its ReLU, one of :data:`NORMS`. With one, the
            convs have no bias: the normalization's shift (batch norm's beta) takes its place.
        momentum: of the batch-norm moving averages (chapter 4 varies it).
        input_normalization: a layer applied to the raw pixels first, or None.
    """
    stack = [keras.Input(shape=tuple(input_shape))]
    if input_normalization is not None:
        stack.append(input_normalization)
    for index, filters in ((1, 16), (2, 32)):
        conv = keras.layers.Conv2D(filters, 3, use_bias=norm == "none", name=f"conv{index}")
        norm_ = norm_layer(norm, 4, f"norm{index}", momentum)
        stack.extend(layer for layer in (conv, norm_, keras.layers.ReLU(name=f"relu{index}"),
                                         keras.layers.MaxPool2D(2, name=f"pool{index}"))
                     if layer is not None)
    stack.append(keras.layers.Flatten(name="flatten"))
    stack.append(keras.layers.Dense(num_classes, name="logits"))
    return keras.Sequential(stack, name=name)


def returns_logits(model) -> bool:
    """True when the model's last layer has no activation, so its loss needs ``from_logits=True``."""
    return model.layers[-1].activation is keras.activations.linear
