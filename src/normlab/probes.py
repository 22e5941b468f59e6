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

import collections
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
QUANTILES = (5, 15, 25, 50, 75, 85, 95)
STEP_MULTIPLES = (0.5, 1.0, 2.0, 4.0)  # landscape steps, in optimizer steps


def _built(model):
    """Refuse a model without weights: running it would create fresh random ones to measure."""
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built and has no weights yet: call it on data "
                         "(or model.build(input_shape)) before probing it")
    return model


@contextlib.contextmanager
def untouched(model):
    """Run a block that may change ``model`` (training-mode calls, optimizer steps) and put every
    variable of the model and of its optimizer back afterwards. An optimizer that was not built
    yet is built first, as ``fit`` would, so that its state can be put back too. The model must
    be built: weights created inside the block could not be put back."""
    _built(model)
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


def _walk(model, path=()):
    for layer in model.layers:
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer, (*path, layer))


def _named(model) -> dict[str, tuple[tuple, object]]:
    """Every layer in ``model``, nested models (a fine-tuned base) opened, in the order of the
    model, by name, with the nested models that hold it. A name that two layers share is
    qualified by the names of those models ("base/dense"), since results are keyed by name."""
    found = list({id(layer): (path, layer) for path, layer in _walk(model)}.values())
    count = collections.Counter(layer.name for _, layer in found)
    return {"/".join(m.name for m in (*path, layer)) if count[layer.name] > 1 else layer.name: (path, layer)
            for path, layer in found}


def _weight_layers(model) -> dict[str, object]:
    return {name: layer for name, (_, layer) in _named(model).items()
            if getattr(layer, "kernel", None) is not None}


def weight_layers(model) -> list:
    """The layers with a kernel (convs and dense layers), in the order of the model, including
    those inside nested models (a fine-tuned base): the probes key them by their own names."""
    return list(_weight_layers(model).values())


def _measured(model) -> dict[str, object]:
    """The weight layers that the gradient probes measure, by name: those whose kernel is
    trainable, since a frozen kernel takes no gradient and no step."""
    trainable = {id(v) for v in _built(model).trainable_variables}
    weight = {name: layer for name, layer in _weight_layers(model).items() if id(layer.kernel) in trainable}
    if not weight:
        raise ValueError(f"model {model.name!r} has no weight layer with a trainable kernel (none, or all "
                         "frozen): there is no gradient to measure")
    return weight


def response_layers(model) -> list[str]:
    """Names of the layers whose outputs He et al. call a layer's *response*: each weight layer's
    normalization if one follows it, else the weight layer itself; the output layer excluded."""
    named = list(_named(model).items())
    weight = [i for i, (_, (_, layer)) in enumerate(named) if getattr(layer, "kernel", None) is not None]
    names = []
    for i in weight[:-1]:
        after_name, (_, after) = named[i + 1]
        names.append(after_name if isinstance(after, NORMALIZATIONS) else named[i][0])
    return names


def _symbolic_output(model, path, layer):
    """``layer``'s output in ``model``'s graph, through the nested models of ``path``: a nested
    model's own graph is called on the tensor that ``model`` feeds it."""
    target = path[0] if path else layer
    graph = getattr(model, "_functional", model)  # a Sequential keeps its graph in a functional model
    nodes = [n for depth in getattr(graph, "_nodes_by_depth", {}).values() for n in depth
             if n.operation is target]
    if len(nodes) != 1:
        raise ValueError(f"layer {target.name!r} is called {len(nodes)} times in model {model.name!r}; "
                         "layer outputs need a functional or Sequential model that calls it once")
    if not path:
        outputs = nodes[0].outputs
        return outputs[0] if len(outputs) == 1 else outputs
    inputs = getattr(target, "_functional", target).inputs
    inner = keras.Model(inputs[0] if len(inputs) == 1 else inputs, _symbolic_output(target, path[1:], layer))
    return inner(*nodes[0].arguments.args)


def layer_outputs(model, x, names, *, training: bool = True) -> dict[str, np.ndarray]:
    """The outputs of the named layers for inputs ``x``. A layer inside a nested model goes by
    its own name, or "base/name" where two layers share that name, as in the probes' results."""
    if not names:
        raise ValueError("no layer to measure: the list of layer names is empty")
    named = _named(_built(model))
    unknown = [name for name in names if name not in named]
    if unknown:
        raise ValueError(f"no layer named {', '.join(unknown)} in model {model.name!r}; "
                         f"its layers: {', '.join(named)}")
    probe = keras.Model(model.inputs[0], {name: _symbolic_output(model, *named[name]) for name in names})
    with untouched(model):
        outputs = probe(np.asarray(x, "float32"), training=training)
    return {name: np.asarray(outputs[name]) for name in names}


def activation_std(model, x, names=None) -> dict[str, float]:
    """The standard deviation of each named layer's output over all its elements (He et al.'s
    Fig. 7 for the default, :func:`response_layers`)."""
    if names is None:
        names = response_layers(_built(model))
        if not names:
            raise ValueError(f"model {model.name!r} has no hidden weight layer, so no response layer: "
                             "name the layers to measure")
    outputs = layer_outputs(model, x, names)
    return {name: float(out.std()) for name, out in outputs.items()}


def _relu_slope(negative_slope=0.0, max_value=None, threshold=0.0):
    """The local slope of Keras's relu over its largest, read from its output ``a`` (the probe
    sees outputs, not inputs): above the threshold it passes x (slope 1, a > 0) up to
    ``max_value`` (slope 0, a >= max_value); at or below it, it gives
    ``negative_slope * (x - threshold) <= 0`` (slope ``negative_slope``)."""
    largest = max(1.0, negative_slope)

    def slope(a):
        s = np.where(a > 0, 1.0, negative_slope)
        return (s if max_value is None else np.where(a >= max_value, 0.0, s)) / largest

    return slope


LOCAL_SLOPES = {"relu": _relu_slope(), "relu6": _relu_slope(max_value=6.0),
                "leaky_relu": _relu_slope(0.2),  # keras.activations.leaky_relu's default slope
                "sigmoid": lambda a: 4 * a * (1 - a), "tanh": lambda a: 1 - a**2}


def _local_slope(name, layer):
    if isinstance(layer, keras.layers.ReLU):
        return _relu_slope(layer.negative_slope, layer.max_value, layer.threshold)
    if isinstance(layer, keras.layers.LeakyReLU):
        return _relu_slope(layer.negative_slope)
    kind = getattr(getattr(layer, "activation", None), "__name__", type(layer).__name__)
    if kind not in LOCAL_SLOPES:
        raise ValueError(f"layer {name} has activation {kind!r}; saturation is defined for ReLU and "
                         f"LeakyReLU layers and the activations {', '.join(LOCAL_SLOPES)}")
    return LOCAL_SLOPES[kind]


def saturated_fraction(model, x, names) -> dict[str, float]:
    """The fraction of each named activation layer's outputs where its derivative is below 5 % of
    its largest value, so almost no gradient passes: a ReLU at zero (and above its max_value, and
    a leaky one whose negative slope is below 5 % of 1), a sigmoid outside about 0.013 to 0.987,
    a tanh beyond about 0.975 in absolute value. The derivative is read from the layer's output,
    which is all the probe sees."""
    named = _named(_built(model))
    slopes = {name: _local_slope(name, named[name][1]) for name in names if name in named}
    outputs = layer_outputs(model, x, names)
    return {name: float(np.mean(slopes[name](out) < 0.05)) for name, out in outputs.items()}


def _loss(model, loss):
    if loss is not None:
        return keras.losses.get(loss)
    if getattr(model, "loss", None) is not None:
        return keras.losses.get(model.loss)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=models.returns_logits(model))


_COMPILED = weakref.WeakKeyDictionary()  # model -> {(loss, trainable state): its compiled gradients}


def _gradients(model, x, y, variables, loss):
    """The loss on ``(x, y)`` in training mode and its gradients for ``variables``. Compiled once
    per model, loss and trainable state: a probe takes several, and eagerly each costs about two
    training steps. The trace bakes in which variables are trainable and which layers are frozen
    (a frozen batch norm runs in inference mode), so freezing or unfreezing a layer traces anew."""
    trainable = model.trainable_variables
    key = (json.dumps(keras.losses.serialize(loss), sort_keys=True, default=str),
           tuple(id(v) for v in trainable), tuple(layer.trainable for layer in model._flatten_layers()))
    compiled = _COMPILED.setdefault(model, {})
    if key not in compiled:
        compiled[key] = _compile_gradients(weakref.ref(model), loss)
    value, grads = compiled[key](tf.convert_to_tensor(np.asarray(x, "float32")), tf.convert_to_tensor(y))
    index = {id(v): i for i, v in enumerate(trainable)}
    missing = [v.path for v in variables if id(v) not in index]
    if missing:
        raise ValueError(f"{', '.join(missing)} not trainable: no gradient to take")
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
    one, else a cross-entropy on the model's outputs. Layers whose kernel is frozen are left out
    (they take no gradient); a model without any trainable kernel raises a ValueError."""
    weight = _measured(model)
    with untouched(model):
        _, grads = _gradients(model, x, y, [layer.kernel for layer in weight.values()], _loss(model, loss))
    return {name: float(tf.norm(g)) for name, g in zip(weight, grads, strict=True)}


def _optimizer(model):
    if getattr(model, "optimizer", None) is None:
        raise ValueError("this probe takes an optimizer step: compile the model first")
    return model.optimizer


def optimizer_step(model, x, y, *, loss=None) -> list[np.ndarray]:
    """The change that one step of the model's own optimizer on ``(x, y)`` makes to each trainable
    variable, its momentum included: the way training really goes from here. The step is taken
    and undone."""
    optimizer, variables = _optimizer(model), _built(model).trainable_variables
    with untouched(model):
        before = [v.numpy() for v in variables]
        _, grads = _gradients(model, x, y, variables, _loss(model, loss))
        optimizer.apply(grads, variables)
        return [v.numpy() - old for v, old in zip(variables, before, strict=True)]


def update_ratios(model, x, y, *, loss=None) -> dict[str, float]:
    """‖ΔW‖ / ‖W‖ of each weight layer's kernel for one step of the model's own optimizer on
    ``(x, y)`` (:func:`optimizer_step`): how fast the layer learns relative to its size, the
    effective learning rate (Karpathy's rule of thumb: around 1e-3). Frozen kernels are left out,
    as in :func:`gradient_norms`."""
    weight = _measured(model)
    step = dict(zip((id(v) for v in model.trainable_variables),  # noqa: B905 one step per variable
                    optimizer_step(model, x, y, loss=loss)))
    return {name: float(np.linalg.norm(step[id(layer.kernel)]) / np.linalg.norm(layer.kernel.numpy()))
            for name, layer in weight.items()}


def internal_covariate_shift(model, x, y, *, loss=None) -> dict[str, tuple[float, float]]:
    """Santurkar et al.'s Definition 2.1, for each weight layer i: ``G``, the gradient of the loss
    on ``(x, y)`` with respect to the layer's kernel, and ``G'``, the same gradient after the
    layers before i (all their trainable weights) took this batch's optimizer step while layer i
    and those after it did not. Returns ``(‖G - G'‖, cos(G, G'), ‖G‖)`` per layer: the last one
    turns the shift into a fraction of the gradient, which compares networks whose weights
    differ in scale. Every gradient is taken from the same moving statistics and random states,
    so only the weights differ. Frozen kernels are left out, as in :func:`gradient_norms`."""
    optimizer, weight, loss = _optimizer(model), _measured(model), _loss(model, loss)
    variables = model.trainable_variables
    order = [layer for _, layer in _named(model).values()]
    position = {id(v): i for i, layer in enumerate(order) if not isinstance(layer, keras.Model)
                for v in layer.trainable_weights}
    shift = {}
    with untouched(model):
        state = [v.numpy() for v in model.non_trainable_variables]

        def gradient(variable):  # from the same moving statistics and random states each time
            for v, value in zip(model.non_trainable_variables, state, strict=True):
                v.assign(value)
            return _gradients(model, x, y, [variable], loss)[1][0].numpy().ravel()

        before = [v.numpy() for v in variables]
        _, grads = _gradients(model, x, y, variables, loss)
        by_variable = {
            id(v): grad.numpy().ravel() for v, grad in zip(variables, grads, strict=True)
        }
        optimizer.apply(grads, variables)
        after = [v.numpy() for v in variables]
        for name, layer in weight.items():
            here = order.index(layer)
            for v, old, new in zip(variables, before, after, strict=True):
                v.assign(new if position.get(id(v), len(order)) < here else old)
            g_new, g_old = gradient(layer.kernel), by_variable[id(layer.kernel)]
            cos = g_old @ g_new / max(np.linalg.norm(g_old) * np.linalg.norm(g_new), 1e-30)
            shift[name] = (
                float(np.linalg.norm(g_old - g_new)), float(cos), float(np.linalg.norm(g_old))
            )
    return shift


def loss_landscape(
    model, x, y, step_sizes, *, direction=None, loss=None
) -> dict[str, np.ndarray | float]:
    """Santurkar et al.'s view of the landscape along a direction ``d`` from the weights ``w``:
    by default the descent direction ``-g``, where ``g`` is the gradient of the loss on
    ``(x, y)`` (all trainable weights), or ``direction``, one array per trainable variable (e.g.
    :func:`optimizer_step`). For each step size ``eta``, the loss at ``w + eta d`` (``"loss"``),
    the gradient's change ‖∇L(w) - ∇L(w + eta d)‖ (``"gradient_change"``), and the largest change
    per unit distance moved, max over eta of that change / ‖eta d‖ (``"beta"``, the effective
    smoothness). ``"loss_at_w"`` is the loss where the walk starts and ``"gradient_norm"`` is ‖g‖.
    The steps must be positive and finite (beta divides by them), and the model needs a
    trainable weight."""
    steps = np.asarray(step_sizes, dtype=float)
    if steps.ndim != 1 or not steps.size or not np.all(np.isfinite(steps) & (steps > 0)):
        raise ValueError(
            f"step_sizes must be one or more positive, finite numbers; got {step_sizes!r}"
        )
    variables, loss = _built(model).trainable_variables, _loss(model, loss)
    if not variables:
        raise ValueError(
            f"model {model.name!r} has no trainable weight: there is no gradient to walk along"
        )
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
        if direction is None:
            d = -g
        else:
            d = np.concatenate([np.asarray(part, float).ravel() for part in direction])
            if d.size != g.size:
                raise ValueError(
                    f"direction has {d.size} values; the trainable weights have {g.size}"
                )
        if not np.linalg.norm(d) > 0:
            raise ValueError(
                "the direction is zero (or not finite) here: there is nowhere to walk"
            )
        d_parts = np.split(d, np.cumsum([v.size for v in w])[:-1])
        losses, changes = [], []
        for eta in steps:
            value, g_eta = at(
                [v + eta * part.reshape(v.shape) for v, part in zip(w, d_parts, strict=True)]
            )
            losses.append(value)
            changes.append(float(np.linalg.norm(g - g_eta)))
    beta = max(c / (eta * np.linalg.norm(d)) for c, eta in zip(changes, steps, strict=True))
    return {"loss_at_w": start, "loss": np.array(losses), "gradient_change": np.array(changes),
            "gradient_norm": float(np.linalg.norm(g)), "beta": float(beta)}


# Probes for normlab.train: (model, subset, config) -> a number or a list, measured during a run.

def _train_batch(subset, config):
    return subset.x_train[:config.batch_size], subset.y_train[:config.batch_size]


def response_std(model, subset, config) -> list[float]:
    """:func:`activation_std` of every response layer on the first 256 training images."""
    return list(activation_std(model, subset.x_train[:256]).values())


def gradient_norm(model, subset, config) -> list[float]:
    """:func:`gradient_norms` of every weight layer on the first training batch."""
    return list(gradient_norms(model, *_train_batch(subset, config)).values())


def update_ratio(model, subset, config) -> list[float]:
    """:func:`update_ratios` of every weight layer for the optimizer's next step on the first
    training batch: how fast each layer is learning, relative to its size (chapter 6)."""
    return list(update_ratios(model, *_train_batch(subset, config)).values())


def total_gradient_norm(model, subset, config) -> float:
    """The norm of the gradient of all weight kernels together on the first training batch: how
    steep the loss is where a run ended (chapter 5 logs it at learning rates that break training).
    NaN when the weights or the loss are no longer finite."""
    norms = np.array(list(gradient_norms(model, *_train_batch(subset, config)).values()))
    return float(np.sqrt(np.sum(norms**2)))


def dead_relu_fraction(model, subset, config) -> float:
    """The fraction of ReLU units, over every ``ReLU`` layer, that output zero for all of the first
    1,000 training images in inference mode: units no gradient reaches any more (chapter 5).
    NaN when an output is not finite (a run whose weights diverged)."""
    names = [name for name, (_, layer) in _named(_built(model)).items()
             if isinstance(layer, keras.layers.ReLU)]
    if not names:
        raise ValueError(f"model {model.name!r} has no ReLU layer to count dead units in")
    outputs = layer_outputs(model, subset.x_train[:1000], names, training=False)
    if not all(np.all(np.isfinite(out)) for out in outputs.values()):
        return float("nan")
    dead = [np.all(out.reshape(len(out), -1) == 0, axis=0) for out in outputs.values()]
    return float(np.mean(np.concatenate(dead)))


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
    """The :data:`QUANTILES` (5th to 95th percentiles) of every response layer's output on the
    first 256 training images, in training mode (noise included): how the distribution that
    each layer hands on moves during training."""
    outputs = layer_outputs(model, subset.x_train[:256], response_layers(model))
    return [np.percentile(out, QUANTILES).tolist() for out in outputs.values()]


def ics(model, subset, config) -> list[list[float]]:
    """:func:`internal_covariate_shift` of every weight layer on the first training batch, as
    ``[‖G - G'‖, cos(G, G'), ‖G‖]`` per layer."""
    return [list(v) for v in internal_covariate_shift(model, *_train_batch(subset, config)).values()]


def landscape(model, subset, config) -> list[float]:
    """:func:`loss_landscape` on the first training batch along the optimizer's own next step
    (:func:`optimizer_step`), at :data:`STEP_MULTIPLES` of it: the loss where the walk starts,
    the losses along it, the gradient's norm and its changes, then the effective beta."""
    x, y = _train_batch(subset, config)
    walk = loss_landscape(model, x, y, STEP_MULTIPLES, direction=optimizer_step(model, x, y))
    return [walk["loss_at_w"], *walk["loss"], walk["gradient_norm"], *walk["gradient_change"],
            walk["beta"]]
