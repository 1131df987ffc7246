"""The notebooks' exercises: each check takes the student's answer and says whether it is right,
and why, with the numbers (tests/lecture/test_exercises.py runs every check cell of the notebooks
with a reference answer and a wrong one).

Each check computes the truth with the pipeline's own code (the cnn family's convolution, the
lecture's gradient step, a Keras layer, the experiment's data) rather than a stored answer.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Checked:
    """An answer checked: `passed`, and what the student should read (why, with the numbers)."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return f"{'✅ right' if self.passed else '❌ not yet'}: {self.message}"

    def _repr_markdown_(self) -> str:
        return f"**{'✅ right' if self.passed else '❌ not yet'}**: {self.message}"


def verdict(passed: bool, right: str, wrong: str) -> Checked:
    return Checked(bool(passed), right if passed else wrong)


def missing(*answers) -> Checked | None:
    """The not-yet-answered answer (the notebook's `...`)."""
    flat = [b for a in answers for b in (a if isinstance(a, list | tuple) else [a])]
    if any(a is Ellipsis or a is None for a in flat):
        return Checked(False, "replace the `...` in the cell above with your answer, run it, then this cell")
    return None


# --------------------------------------------------------------------------- 1. perceptrons, losses, depth


def perceptron_and(weights, bias) -> Checked:
    """step(x·w + b) on the four inputs (0/1, 0/1) must be logical AND."""
    if (gap := missing(weights, bias)) is not None:
        return gap
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    output = (x @ np.asarray(weights, dtype=float).reshape(2) + float(bias) > 0).astype(int)
    table = ", ".join(f"{tuple(int(v) for v in row)} → {o}" for row, o in zip(x, output, strict=True))
    return verdict(
        list(output) == [0, 0, 0, 1],
        f"{table}: only (1, 1) fires",
        f"{table}, but AND fires for (1, 1) only: the sum must pass 0 only when both inputs are 1",
    )


def overshooting_step(learning_rate) -> Checked:
    """One plain SGD step (the lecture's gradient-step example) at this rate must raise the loss."""
    if (gap := missing(learning_rate)) is not None:
        return gap
    from pipeline.lecture.examples import gradient_step

    loss = gradient_step(float(learning_rate)).numbers["loss"]
    before, after = loss["before"], loss["after"]
    return verdict(
        after > before,
        f"η = {learning_rate}: J goes from {before:.2f} to {after:.2f}: the step jumps past the minimum",
        f"η = {learning_rate}: J goes from {before:.2f} down to {after:.2f}; try a larger η",
    )


def family_model(experiment: str, overrides: list[str] | None = None):
    """The model the experiment's family builds for its data (not trained)."""
    from pipeline import config, data
    from pipeline.training.plan import make_plan

    plan = make_plan(config.load_params(), experiment, overrides)
    _, spec = plan.objective.prepare(data.load(plan.exp.dataset), plan.train, plan.objective_params)
    return plan.family.build(plan.model, spec)


def weights_of(experiment: str, answer, hidden_units: list[int] | None = None) -> Checked:
    """The number of weights of the experiment's model (with these `hidden_units`), as Keras counts them."""
    if (gap := missing(answer)) is not None:
        return gap
    changes = None if hidden_units is None else [f"model.hidden_units={list(hidden_units)}"]
    model = family_model(experiment, changes)
    dense = [layer for layer in model.layers if layer.count_params()]
    terms = " + ".join(f"({layer.input.shape[-1]} + 1)·{layer.units}" for layer in dense)
    return verdict(
        int(answer) == model.count_params(),
        f"{terms} = {model.count_params()}",
        f"{experiment} has {len(dense)} Dense layers; each has (inputs + 1)·units weights",
    )


# --------------------------------------------------------------------------- 2. convolutional networks


def output_4x4(padding, stride) -> Checked:
    """A 3×3 kernel on an 8×8 digit, through the cnn family's own conv block, must give 4×4."""
    if (gap := missing(padding, stride)) is not None:
        return gap
    from pipeline.errors import UserError
    from pipeline.lecture.examples import convolve

    image = np.zeros((8, 8, 1), np.float32)
    try:
        output, _, _ = convolve(image, np.ones((3, 3, 1, 1), np.float32), strides=stride, padding=padding)
    except (UserError, ValueError, TypeError) as exc:
        return Checked(False, f"padding {padding!r}, stride {stride!r} do not make a Conv2D: {exc}")
    size = output.shape[:2]
    return verdict(
        size == (4, 4),
        f"padding {padding!r}, stride {stride!r}: the output is 4×4",
        f"padding {padding!r}, stride {stride!r}: the output is {size[0]}×{size[1]}; "
        "(n + 2p − k)/s + 1 with n = 8, k = 3",
    )


def conv_parameters(answer) -> Checked:
    """Conv2D(64, 3×3) on 32 channels, with a bias, as Keras counts it."""
    if (gap := missing(answer)) is not None:
        return gap
    import keras

    layer = keras.layers.Conv2D(64, 3)
    layer.build((None, 8, 8, 32))
    count = layer.count_params()
    return verdict(
        int(answer) == count,
        f"(3·3·32 + 1)·64 = {count}: one 3×3 kernel per input channel, summed, plus a bias, per filter",
        f"not {int(answer):,}: each of the 64 filters has a 3×3 kernel per input channel, plus one bias",
    )


def latest_match(experiment: str, mine) -> tuple | None:
    """(run name, headline value, its train examples and epochs) of the latest finished run of
    `experiment` trained like `mine` (as many examples, as many epochs), else None."""
    import mlflow

    params = mlflow.get_run(mine.run_id).data.params
    found = mlflow.search_runs(
        [mlflow.get_run(mine.run_id).info.experiment_id],
        filter_string=f"attributes.run_name = '{experiment}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    for run in found:
        theirs = run.data.params
        same = all(theirs.get(k) == params.get(k) for k in ("data.train_examples", "train.epochs"))
        if same and mine.metric in run.data.metrics:
            return run.data.metrics[mine.metric], theirs["data.train_examples"], theirs["train.epochs"]
    return None


def as_good(mine, experiment: str, max_params: int, within: float = 0.02) -> Checked:
    """Your run (pipeline.fit's) against the latest run of `experiment` trained on as many examples
    for as many epochs: at most `within` worse by the task's headline metric (or better), with
    fewer than `max_params` weights."""
    if (gap := missing(mine)) is not None:
        return gap
    size = int(mine.metrics.get("model_params", 0))
    if size >= max_params:
        return Checked(False, f"your model has {size:,} parameters; stay under {max_params:,}")
    match = latest_match(experiment, mine)
    if match is None:
        return Checked(
            False,
            f"no finished run of {experiment} trained on as many examples for as many epochs as yours: "
            f"pipeline.train('{experiment}', epochs=EPOCHS, limit=LIMIT) first",
        )
    theirs, examples, epochs = match
    gain = (
        mine.value - theirs
        if mine.outcome.plan.objective.direction(mine.metric) == "max"
        else theirs - mine.value
    )
    versus = f"{mine.metric} {mine.value:.4f} against {experiment}'s {theirs:.4f}"
    versus += f" ({examples} training examples, epochs {epochs}), with {size:,} parameters"
    return verdict(
        gain >= -within,
        f"{versus}: {'better' if gain > 0 else 'as good' if gain == 0 else f'within {within}'}",
        f"{versus}: {-gain:.4f} behind, more than {within} (more filters within the budget? pooling? "
        "batch normalisation, its momentum lower for few steps? its own optimizer?)",
    )


# --------------------------------------------------------------------------- 3. transfer learning


def transfer_model(experiment: str):
    """The experiment's transfer model as a sandboxed run builds it (this session's module when a
    sandboxed `pretrain` published one, else the project's)."""
    from pipeline import config, data
    from pipeline.training.plan import make_plan
    from pipeline.training.run import RunOptions, sandboxed

    plan = sandboxed(make_plan(config.load_params(), experiment), RunOptions(sandbox=True))
    _, spec = plan.objective.prepare(data.load(plan.exp.dataset), plan.train, plan.objective_params)
    return plan.family.build(plan.model, spec)


def feature_length(answer) -> Checked:
    """The length of the feature vector the hub module (pretrain's cnn trunk, flattened) gives."""
    if (gap := missing(answer)) is not None:
        return gap
    length = transfer_model("transfer-feature").get_layer("hub_module").output_dim
    return verdict(
        int(answer) == length,
        f"{length}: the last feature maps (height × width × filters), flattened",
        f"not {int(answer):,}: follow the map sizes through the convolutions ('same' keeps 8×8) and the "
        "pooling (2×2 halves them), times the last layer's filters",
    )


def trainable_weights(answer, classes: int = 10) -> Checked:
    """How many weights transfer-feature would train for `classes` classes: the new head only, the
    module frozen; Keras counts them on transfer-feature's model with such a head."""
    if (gap := missing(answer)) is not None:
        return gap
    import keras

    model = transfer_model("transfer-feature")
    features = model.get_layer("hub_module").output
    head = keras.layers.Dense(classes, activation="softmax")
    wider = keras.Model(model.inputs, head(model.get_layer("head_dropout")(features)))
    trained = sum(math.prod(v.shape) for v in wider.trainable_weights)
    frozen = sum(math.prod(v.shape) for v in wider.non_trainable_weights)
    return verdict(
        int(answer) == trained,
        f"({features.shape[-1]} + 1)·{classes} = {trained:,} trained; the module's {frozen:,} stay frozen",
        f"not {int(answer):,}: the module is frozen; only the new Dense head learns (a weight per feature "
        "and class, and a bias per class)",
    )


# --------------------------------------------------------------------------- 4. sequences


def vanishing_steps(answer, recurrent_weight: float = 0.9, share: float = 0.01) -> Checked:
    """A one-unit tanh RNN (SimpleRNN) with recurrent weight u: how many steps back its gradient
    first falls below `share` of the last step's, computed with Keras' GradientTape."""
    if (gap := missing(answer)) is not None:
        return gap
    import keras
    import tensorflow as tf

    steps = 120
    rnn = keras.layers.SimpleRNN(1)
    x = tf.Variable(np.full((1, steps, 1), 1e-3, np.float32))
    rnn.build((None, steps, 1))
    rnn.set_weights(
        [np.ones((1, 1), np.float32), np.full((1, 1), recurrent_weight, np.float32), np.zeros(1, np.float32)]
    )
    with tf.GradientTape() as tape:
        last = rnn(x)
    gradient = np.abs(np.asarray(tape.gradient(last, x))[0, ::-1, 0])  # index k: k steps back
    ratio = gradient / gradient[0]
    first, k = int(np.argmax(ratio < share)), min(max(int(answer), 1), steps - 1)
    shown = f"k steps back the gradient is u^k = {recurrent_weight}^k of the last step's (tanh's slope ≈ 1)"
    return verdict(
        k == first,
        f"{shown}: k = {k - 1}: {ratio[k - 1]:.4f}, k = {k}: {ratio[k]:.4f}; over the lstm's 104 weeks: "
        f"{ratio[103]:.1e}",
        f"{shown}: at k = {k} it is {ratio[k]:.4f}, at k = {k - 1} {ratio[k - 1]:.4f}. Solve u^k < {share}: "
        f"k > log({share}) / log({recurrent_weight})",
    )


def lstm_parameters(answer) -> Checked:
    """LSTM(32) reading one number per step, as Keras counts it."""
    if (gap := missing(answer)) is not None:
        return gap
    import keras

    layer = keras.layers.LSTM(32)
    layer.build((None, 104, 1))
    count = layer.count_params()
    return verdict(
        int(answer) == count,
        f"4·((1 + 32)·32 + 32) = {count:,}: four gates, each a Dense layer on [x_t, h_(t−1)]",
        f"not {int(answer):,}: an LSTM has four gates (input, forget, cell, output), each with weights on "
        "the input and on the previous state, and a bias",
    )


# --------------------------------------------------------------------------- 5. autoencoders


def pca_components(answer, variance: float = 0.9) -> Checked:
    """How many principal components keep `variance` of the autoencoder's training digits' variance."""
    if (gap := missing(answer)) is not None:
        return gap
    from sklearn.decomposition import PCA

    from pipeline import config, data
    from pipeline.data import streams
    from pipeline.training.plan import make_plan

    plan = make_plan(config.load_params(), "pca")
    splits, _ = plan.objective.prepare(data.load(plan.exp.dataset), plan.train, plan.objective_params)
    x = streams.floats(splits.x_train).reshape(len(splits.x_train), -1)  # the images read whole
    kept = np.cumsum(PCA().fit(x).explained_variance_ratio_)
    needed = int(np.argmax(kept >= variance)) + 1
    return verdict(
        int(answer) == needed,
        f"{needed} components keep {kept[needed - 1]:.1%} of the variance "
        f"({needed - 1} keep {kept[needed - 2]:.1%})",
        f"not {int(answer)}: {int(answer)} components keep {kept[int(answer) - 1]:.1%}; find the first that "
        f"reaches {variance:.0%}",
    )


# the ROC-AUC exercise's scores: a detector's anomaly scores of six test images, and which are anomalies
AUC_SCORES = [0.9, 0.3, 0.7, 0.4, 0.2, 0.6]
AUC_LABELS = [1, 0, 1, 1, 0, 0]


def roc_auc(answer) -> Checked:
    """ROC-AUC by hand: the share of (anomaly, normal) pairs in which the anomaly scores higher."""
    if (gap := missing(answer)) is not None:
        return gap
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(AUC_LABELS, AUC_SCORES)
    return verdict(
        math.isclose(float(answer), auc, abs_tol=1e-3),
        f"{auc:.3f}, as scikit-learn's roc_auc_score: the share of (anomaly, normal) pairs ranked right",
        f"scikit-learn says {auc:.3f}: count the (anomaly, normal) pairs in which the anomaly scores higher, "
        "divided by all such pairs",
    )
