"""Measurements inside a network that leave it as it was: signals, gradients, internal covariate
shift and the loss landscape along the gradient.

Explained in chapters 6 ("Healthy signals") and 7 ("Smoother optimization"). A probe runs the
model on the data it is given, in training mode (batch statistics, as training sees them), and
puts back every variable it may change: weights, batch-norm moving statistics, the states of
random-number generators, and the optimizer's slots and step count (:func:`untouched`). A probe
taken in the middle of training therefore does not change what training does next.

The first group takes a model and data and returns one value per layer, by layer name; the
second group (at the end) adapts them to :mod:`normlab.train`'s probe signature
``(model, subset, config)``, so a run can measure them while it trains.
"""

from __future__ import annotations

import contextlib
import json
import weakref

import numpy as np

from normlab import layers, models
from normlab.runtime import import_tensorflow

tf, keras = import_tensorflow()

NORMALIZATIONS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                  keras.layers.GroupNormalization, layers.BatchNorm)
PERCENTILES = (15, 50, 85)  # Ioffe and Szegedy's Fig. 1
QUANTILES = (5, 15, 50, 85, 95)
STEP_MULTIPLES = (0.5, 1.0, 2.0, 4.0)  # landscape steps, in learning rates


@contextlib.contextmanager
def untouched(model):
    """Run a block that may change ``model`` (training-mode calls, optimizer steps) and put every
    variable of the model and of its optimizer back afterwards. An optimizer that was not built
    yet is built first, as ``fit`` would, so that its state can be put back too."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = list(model.variables) + (list(optimizer.variables) if optimizer else [])
    values = [v.numpy() for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)


def weight_layers(model) -> list:
    """The layers with a kernel (convs and dense layers), in the order of the model."""
    return [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]


def response_layers(model) -> list[str]:
    """Names of the layers whose outputs He et al. call a layer's *response*: each weight layer's
    normalization if one follows it, else the weight layer itself; the output layer excluded."""
    names, all_layers = [], list(model.layers)
    for layer in weight_layers(model)[:-1]:
        after = all_layers[all_layers.index(layer) + 1]
        names.append(after.name if isinstance(after, NORMALIZATIONS) else layer.name)
    return names


def layer_outputs(model, x, names, *, training: bool = True) -> dict[str, np.ndarray]:
    """The outputs of the named layers for inputs ``x``."""
    probe = keras.Model(model.inputs[0], {name: model.get_layer(name).output for name in names})
    with untouched(model):
        outputs = probe(np.asarray(x, "float32"), training=training)
    return {name: np.asarray(outputs[name]) for name in names}


def activation_std(model, x, names=None) -> dict[str, float]:
    """The standard deviation of each named layer's output over all its elements (He et al.'s
    Fig. 7 for the default, :func:`response_layers`)."""
    outputs = layer_outputs(model, x, names or response_layers(model))
    return {name: float(out.std()) for name, out in outputs.items()}


def _activation(layer) -> str:
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def saturated_fraction(model, x, names) -> dict[str, float]:
    """The fraction of each named activation layer's outputs where its derivative is below 5 % of
    its largest value, so almost no gradient passes: a ReLU at zero, a sigmoid outside about
    0.013 to 0.987, a tanh beyond about 0.975 in absolute value."""
    local_slope = {"relu": lambda a: (a > 0).astype(float), "sigmoid": lambda a: 4 * a * (1 - a),
                   "tanh": lambda a: 1 - a**2}
    outputs = layer_outputs(model, x, names)
    fractions = {}
    for name, out in outputs.items():
        kind = _activation(model.get_layer(name))
        if kind not in local_slope:
            raise ValueError(f"layer {name} has activation {kind!r}; saturation is defined for "
                             f"{', '.join(local_slope)}")
        fractions[name] = float(np.mean(local_slope[kind](out) < 0.05))
    return fractions


def _loss(model, loss):
    if loss is not None:
        return keras.losses.get(loss)
    if getattr(model, "loss", None) is not None:
        return keras.losses.get(model.loss)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=models.returns_logits(model))


_COMPILED = weakref.WeakKeyDictionary()  # model -> {loss config: its compiled loss and gradients}


def _gradients(model, x, y, variables, loss):
    """The loss on ``(x, y)`` in training mode and its gradients for ``variables``. Compiled once
    per model and loss: a probe takes several, and eagerly each costs about two training steps."""
    by_loss = _COMPILED.setdefault(model, {})
    key = json.dumps(keras.losses.serialize(loss), sort_keys=True, default=str)
    if key not in by_loss:
        by_loss[key] = _compile_gradients(weakref.ref(model), loss)
    value, grads = by_loss[key](tf.convert_to_tensor(np.asarray(x, "float32")), tf.convert_to_tensor(y))
    index = {id(v): i for i, v in enumerate(model.trainable_variables)}
    return float(value), [grads[index[id(v)]] for v in variables]


def _compile_gradients(model_ref, loss):
    """Holds the model weakly, so that the cache above does not keep it alive."""

    @tf.function
    def loss_and_gradients(x, y):
        model = model_ref()
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss(y, model(x, training=True)))  # a loss is per example
        return value, tape.gradient(value, model.trainable_variables)

    return loss_and_gradients


def gradient_norms(model, x, y, *, loss=None) -> dict[str, float]:
    """‖∂L/∂W‖ of each weight layer's kernel for the batch ``(x, y)``; the loss is the compiled
    one, else a cross-entropy on the model's outputs."""
    kernels = [layer.kernel for layer in weight_layers(model)]
    with untouched(model):
        _, grads = _gradients(model, x, y, kernels, _loss(model, loss))
    return {layer.name: float(tf.norm(g)) for layer, g in zip(weight_layers(model), grads, strict=True)}


def _optimizer(model):
    if getattr(model, "optimizer", None) is None:
        raise ValueError("this probe takes an optimizer step: compile the model first")
    return model.optimizer


def update_ratios(model, x, y, *, loss=None) -> dict[str, float]:
    """‖ΔW‖ / ‖W‖ of each weight layer's kernel for one step of the model's own optimizer on
    ``(x, y)`` (Karpathy's rule of thumb: around 1e-3). The step is taken and undone."""
    optimizer, variables = _optimizer(model), model.trainable_variables
    weight = weight_layers(model)
    with untouched(model):
        before = [layer.kernel.numpy() for layer in weight]
        _, grads = _gradients(model, x, y, variables, _loss(model, loss))
        optimizer.apply(grads, variables)
        return {layer.name: float(np.linalg.norm(layer.kernel.numpy() - old) / np.linalg.norm(old))
                for layer, old in zip(weight, before, strict=True)}


def internal_covariate_shift(model, x, y, *, loss=None) -> dict[str, tuple[float, float]]:
    """Santurkar et al.'s Definition 2.1, for each weight layer i: ``G``, the gradient of the loss
    on ``(x, y)`` with respect to the layer's kernel, and ``G'``, the same gradient after the
    layers before i (all their trainable weights) took this batch's optimizer step while layer i
    and those after it did not. Returns ``(‖G - G'‖, cos(G, G'))`` per layer. Every gradient is
    taken from the same moving statistics and random states, so only the weights differ."""
    optimizer, variables = _optimizer(model), model.trainable_variables
    loss, weight = _loss(model, loss), weight_layers(model)
    position = {id(v): i for i, layer in enumerate(model.layers) for v in layer.trainable_weights}
    shift = {}
    with untouched(model):
        state = [v.numpy() for v in model.non_trainable_variables]

        def gradient(variable):  # from the same moving statistics and random states each time
            for v, value in zip(model.non_trainable_variables, state, strict=True):
                v.assign(value)
            return _gradients(model, x, y, [variable], loss)[1][0].numpy().ravel()

        before = [v.numpy() for v in variables]
        _, grads = _gradients(model, x, y, variables, loss)
        by_variable = {id(v): grad.numpy().ravel() for v, grad in zip(variables, grads, strict=True)}
        g = {layer.name: by_variable[id(layer.kernel)] for layer in weight}
        optimizer.apply(grads, variables)
        after = [v.numpy() for v in variables]
        for layer in weight:
            here = model.layers.index(layer)
            for v, old, new in zip(variables, before, after, strict=True):
                v.assign(new if position[id(v)] < here else old)
            g_new, g_old = gradient(layer.kernel), g[layer.name]
            cos = g_old @ g_new / max(np.linalg.norm(g_old) * np.linalg.norm(g_new), 1e-30)
            shift[layer.name] = (float(np.linalg.norm(g_old - g_new)), float(cos))
    return shift


def loss_landscape(model, x, y, step_sizes, *, loss=None) -> dict[str, np.ndarray | float]:
    """Santurkar et al.'s view of the landscape along the gradient ``g`` of the loss on
    ``(x, y)`` (all trainable weights): for each step size ``eta``, the loss at ``w - eta g``
    (``"loss"``), the gradient's change ‖∇L(w) - ∇L(w - eta g)‖ (``"gradient_change"``), and the
    largest change per unit distance moved, max over eta of that change / ‖eta g‖ (``"beta"``,
    the effective smoothness). ``"loss_at_w"`` is the loss where the walk starts."""
    variables, loss = model.trainable_variables, _loss(model, loss)
    with untouched(model):
        state = [v.numpy() for v in model.non_trainable_variables]

        def at(weights):
            for v, value in zip(variables, weights, strict=True):
                v.assign(value)
            for v, value in zip(model.non_trainable_variables, state, strict=True):
                v.assign(value)
            value, grads = _gradients(model, x, y, variables, loss)
            return value, np.concatenate([g.numpy().ravel() for g in grads])

        w = [v.numpy() for v in variables]
        start, g = at(w)
        sizes = [int(np.prod(v.shape)) for v in w]
        g_parts = np.split(g, np.cumsum(sizes)[:-1])
        losses, changes = [], []
        for eta in step_sizes:
            value, g_eta = at([v - eta * part.reshape(v.shape) for v, part in zip(w, g_parts, strict=True)])
            losses.append(value)
            changes.append(float(np.linalg.norm(g - g_eta)))
    beta = max(c / (eta * np.linalg.norm(g)) for c, eta in zip(changes, step_sizes, strict=True))
    return {"loss_at_w": start, "loss": np.array(losses), "gradient_change": np.array(changes),
            "beta": float(beta)}


# Probes for normlab.train: (model, subset, config) -> a number or a list, measured during a run.

def _train_batch(subset, config):
    return subset.x_train[:config.batch_size], subset.y_train[:config.batch_size]


def response_std(model, subset, config) -> list[float]:
    """:func:`activation_std` of every response layer on the first 256 training images."""
    return list(activation_std(model, subset.x_train[:256]).values())


def gradient_norm(model, subset, config) -> list[float]:
    """:func:`gradient_norms` of every weight layer on the first training batch."""
    return list(gradient_norms(model, *_train_batch(subset, config)).values())


def sigmoid_percentiles(model, subset, config) -> list[float]:
    """The 15th, 50th and 85th percentiles of the input to one sigmoid of the last hidden layer
    (its first unit) over the first 1,000 test images: Ioffe and Szegedy's Fig. 1 (b, c)."""
    name = response_layers(model)[-1]
    values = layer_outputs(model, subset.x_test[:1000], [name])[name][:, 0]
    return np.percentile(values, PERCENTILES).tolist()


def accuracy(model, subset, config) -> float:
    """Accuracy on the test split in inference mode, at any step of a run."""
    logits = model.predict(subset.x_test.astype("float32"), batch_size=1024, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == subset.y_test))


def response_quantiles(model, subset, config) -> list[list[float]]:
    """The 5th, 15th, 50th, 85th and 95th percentiles of every response layer's output on the
    first 256 training images, in training mode (noise included): how the distribution that
    each layer hands on moves during training."""
    outputs = layer_outputs(model, subset.x_train[:256], response_layers(model))
    return [np.percentile(out, QUANTILES).tolist() for out in outputs.values()]


def ics(model, subset, config) -> list[list[float]]:
    """:func:`internal_covariate_shift` of every weight layer on the first training batch, as
    ``[‖G - G'‖, cos(G, G')]`` per layer."""
    return [list(v) for v in internal_covariate_shift(model, *_train_batch(subset, config)).values()]


def landscape(model, subset, config) -> list[float]:
    """:func:`loss_landscape` on the first training batch with steps of :data:`STEP_MULTIPLES`
    learning rates: the losses, the gradient changes, then the effective beta."""
    steps = [m * config.learning_rate for m in STEP_MULTIPLES]
    walk = loss_landscape(model, *_train_batch(subset, config), steps)
    return [*walk["loss"], *walk["gradient_change"], walk["beta"]]
