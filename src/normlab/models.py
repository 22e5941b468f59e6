"""The book's networks, with the normalization layers as parameters.

:func:`lenet5` is explained in chapter 5 ("LeNet-5 experiments"). The source article builds two
LeNet-5 classes; it is both of them, with their bugs fixed, and every difference between them
(input normalization, the normalization layer, its place next to the activation, dropout) is an
argument, so an experiment changes one thing at a time. :func:`small_cnn` is the two-convolution
network of chapters 1 and 4, small enough to train many times in a few minutes. The deep
networks of chapter 6, :func:`resnet` (plain or with shortcuts) and :func:`mlp`, and the
VGG-style :func:`vgg` of chapter 7 name their layers by depth (``conv1``, ``norm1``, ...), so a
probe can follow a signal through them.
"""

from __future__ import annotations

from normlab.layers import FusedBatchNorm, NoisyBatchNorm
from normlab.runtime import import_tensorflow

tf, keras = import_tensorflow()

BUILDERS = ("lenet5", "small_cnn", "resnet", "vgg", "mlp")  # the models normlab.train can train, by name
NORMS = ("none", "batch", "batch_fused", "layer", "group")
OUTPUTS = ("logits", "sigmoid")
PLACEMENTS = ("before", "after")
DROPOUT_AT = ("hidden", "head")
GROUPS = 2  # divides every LeNet-5 width: 6, 16, 120 and 84


def norm_layer(kind: str, rank: int, name: str, momentum: float = 0.99):
    """A fresh normalization layer for a rank-``rank`` activation (4: conv, 2: dense), or None.

    ``batch`` is Keras's layer, whose moving averages use ``momentum``; ``batch_fused`` computes
    the same faster (:class:`normlab.layers.FusedBatchNorm`); ``layer`` normalizes each example over all
    its features (height, width and channels for a conv activation); ``group`` over groups of
    channels.
    """
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")
    if kind == "none":
        return None
    if kind == "batch_fused":
        return FusedBatchNorm(momentum=momentum, name=name)
    if kind == "batch":
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


class ShortcutA(keras.layers.Layer):
    """He et al.'s option A shortcut where a block halves the resolution and doubles the
    channels: every second pixel, and zeros for the new channels, so it has no weights.

    The pixels kept are those the block's stride-2 convolution is centred on, so that the
    shortcut and the block's output describe the same place. With stride 2, Keras's
    ``padding="same"`` puts an odd pixel of padding at the bottom and right, so a 3x3 kernel is
    centred on pixel ``2 i + 1`` of an even-sized input (no padding on top) and on ``2 i`` of an
    odd-sized one (one pixel on each side).
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        x = inputs[:, 1 - height % 2::2, 1 - width % 2::2, :]
        extra = self.filters - x.shape[-1]
        return tf.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


class ResidualScale(keras.layers.Layer):
    """SkipInit (De and Smith, 2020): a learned scalar that multiplies a residual branch,
    initialized to zero, so that every block starts as the identity. They show that batch norm
    does nearly the same for a residual network: it gives each branch unit variance while the
    shortcut's variance grows with depth, so deep blocks start close to the identity. Explained
    in chapter 6."""

    def build(self, input_shape):
        self.alpha = self.add_weight(shape=(), initializer="zeros", name="alpha")

    def call(self, inputs):
        return self.alpha * inputs


def resnet(input_shape, num_classes: int = 10, *, depth: int = 20, shortcuts: bool = True,
           norm: str = "batch", width: int = 16, initializer: str = "he_normal",
           momentum: float = 0.9, skip_init: bool = False, weight_decay: float = 0.0,
           input_normalization=None, name: str | None = None):
    """He et al.'s CIFAR-10 network (2016, section 4.2), with identity shortcuts or plain.

    A 3x3 conv, then three stages of ``(depth - 2) / 6`` blocks of two 3x3 convs with ``width``,
    ``2 width`` and ``4 width`` filters (the first conv of stages 2 and 3 has stride 2), global
    average pooling and a dense layer: ``depth`` weight layers. Each conv is followed by its
    normalization and a ReLU; in a block with ``shortcuts`` the block's input is added before the
    second ReLU (option A: :class:`ShortcutA` where the shape changes). Explained in chapter 6.

    Args:
        depth: ``6 n + 2`` weight layers: 20, 32, 44, 56, 110, ...
        shortcuts: identity shortcuts (a ResNet) or none (a plain network of the same depth).
        norm: normalization after every conv, ``"batch"``, ``"batch_fused"`` (the same, computed
            faster: :class:`normlab.layers.FusedBatchNorm`) or ``"none"``; with one the convs
            have no bias.
        width: filters of the first stage.
        initializer: of the conv and dense kernels; the paper uses He et al.'s ``"he_normal"``.
        momentum: of the batch-norm moving averages: 0.9, the default of the Torch code the
            papers' networks were trained with (Keras's 0.99 averages over more steps than a
            short run has, chapter 4).
        skip_init: multiply each block's residual branch by a :class:`ResidualScale` that starts
            at zero (needs ``shortcuts``).
        weight_decay: an L2 penalty on the conv and dense kernels whose gradient is
            ``weight_decay * W``, as the paper's SGD adds it (1e-4); it goes through the momentum
            like the loss's gradient.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6 n + 2 with n >= 1 (20, 32, 56, ...), got {depth}")
    if norm not in ("none", "batch", "batch_fused"):
        raise ValueError(f"norm must be 'none', 'batch' or 'batch_fused', got {norm!r}")
    if skip_init and not shortcuts:
        raise ValueError("skip_init scales residual branches: it needs shortcuts=True")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    layer = iter(range(1, depth))
    decay = keras.regularizers.L2(weight_decay / 2) if weight_decay else None  # d(c w²)/dw = 2 c w

    def conv(x, filters, stride=1):
        i = next(layer)
        x = keras.layers.Conv2D(filters, 3, stride, padding="same", use_bias=norm == "none",
                                kernel_initializer=initializer, kernel_regularizer=decay,
                                name=f"conv{i}")(x)
        norm_ = norm_layer(norm, 4, f"norm{i}", momentum)
        return (x if norm_ is None else norm_(x)), i

    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs if input_normalization is None else input_normalization(inputs)
    x, i = conv(x, width)
    x = keras.layers.ReLU(name=f"relu{i}")(x)
    for stage in range(3):
        filters = width * 2**stage
        for block in range((depth - 2) // 6):
            stride = 2 if stage and not block else 1
            y, i = conv(x, filters, stride)
            y, i = conv(keras.layers.ReLU(name=f"relu{i}")(y), filters)
            if shortcuts:
                if skip_init:
                    y = ResidualScale(name=f"scale{i}")(y)
                shortcut = x if stride == 1 else ShortcutA(filters, name=f"shortcut{i}")(x)
                y = keras.layers.Add(name=f"add{i}")([y, shortcut])
            x = keras.layers.ReLU(name=f"relu{i}")(y)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=initializer,
                                 kernel_regularizer=decay, name="logits")(x)
    kind = "resnet" if shortcuts else "plain"
    return keras.Model(inputs, outputs, name=name or f"{kind}{depth}")


def vgg(input_shape, num_classes: int = 10, *, norm: str = "none", widths=(32, 64, 128),
        convs_per_stage: int = 2, momentum: float = 0.9, input_normalization=None,
        name: str = "vgg"):
    """A VGG-style network, scaled down: stages of ``convs_per_stage`` 3x3 convs with
    ``widths[s]`` filters, each followed by its normalization and a ReLU, and a 2x2 max-pool
    after each stage; then a dense layer with logits out. Explained in chapter 7.

    Args:
        norm: ``"none"``, ``"batch"`` (Keras's layer) or ``"noisy_batch"``
            (:class:`normlab.layers.NoisyBatchNorm`); with one, the convs have no bias.
        momentum: of the batch-norm moving averages (see :func:`resnet`).
    """
    if norm not in ("none", "batch", "noisy_batch"):
        raise ValueError(f"norm must be 'none', 'batch' or 'noisy_batch', got {norm!r}")
    stack = [keras.Input(shape=tuple(input_shape))]
    if input_normalization is not None:
        stack.append(input_normalization)
    i = 0
    for stage, filters in enumerate(widths, start=1):
        for _ in range(convs_per_stage):
            i += 1
            stack.append(keras.layers.Conv2D(filters, 3, padding="same", use_bias=norm == "none",
                                             name=f"conv{i}"))
            if norm == "noisy_batch":
                stack.append(NoisyBatchNorm(momentum=momentum, name=f"norm{i}"))
            elif norm == "batch":
                stack.append(keras.layers.BatchNormalization(momentum=momentum, name=f"norm{i}"))
            stack.append(keras.layers.ReLU(name=f"relu{i}"))
        stack.append(keras.layers.MaxPool2D(2, name=f"pool{stage}"))
    stack.append(keras.layers.Flatten(name="flatten"))
    stack.append(keras.layers.Dense(num_classes, name="logits"))
    return keras.Sequential(stack, name=name)


def mlp(input_shape, num_classes: int = 10, *, depth: int = 3, units: int = 100,
        activation: str = "sigmoid", norm: str = "none", momentum: float = 0.9,
        input_normalization=None, name: str = "mlp"):
    """Ioffe and Szegedy's MNIST network (2015, section 4.1): ``depth`` fully connected layers of
    ``units`` sigmoids, with batch norm (``norm="batch"``) between each linear layer and its
    nonlinearity, and logits out; ``momentum`` as in :func:`resnet`. Explained in chapter 6."""
    if norm not in ("none", "batch"):
        raise ValueError(f"norm must be 'none' or 'batch', got {norm!r}")
    stack = [keras.Input(shape=tuple(input_shape))]
    if input_normalization is not None:
        stack.append(input_normalization)
    stack.append(keras.layers.Flatten(name="flatten"))
    for i in range(1, depth + 1):
        stack.append(keras.layers.Dense(units, use_bias=norm == "none", name=f"fc{i}"))
        if norm == "batch":
            stack.append(keras.layers.BatchNormalization(momentum=momentum, name=f"norm{i}"))
        stack.append(keras.layers.Activation(activation, name=f"{activation}{i}"))
    stack.append(keras.layers.Dense(num_classes, name="logits"))
    return keras.Sequential(stack, name=name)


def returns_logits(model) -> bool:
    """True when the model's last layer has no activation, so its loss needs ``from_logits=True``."""
    return model.layers[-1].activation is keras.activations.linear
