"""The notebooks' exercises (pipeline/lecture/exercises.py): every check cell of notebooks/*.py,
run as the notebook runs it (its parameters and setup cells first, then the exercise's cells),
with the reference answer of tests/lecture/answers.py in place of the answer cell, which must
pass, and with a wrong one, which must fail."""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest

from tests.helpers import REPO
from tests.lecture import answers

jupytext = pytest.importorskip("jupytext", reason="the notebooks extra is not installed: make test")

ANSWER, CHECK = re.compile(r"answer:(?P<id>[\w-]+)"), re.compile(r"check:(?P<id>[\w-]+)")


@dataclasses.dataclass(frozen=True)
class Exercise:
    id: str
    notebook: str
    setup: tuple[str, ...]  # the parameters and setup cells
    cells: tuple[str, ...]  # from the answer cell (first) to the check cell (last)


def tagged(cell, pattern) -> str | None:
    found = [m["id"] for tag in cell.metadata.get("tags", []) if (m := pattern.fullmatch(tag))]
    return found[0] if found else None


def exercises() -> list[Exercise]:
    found = []
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")):
        cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
        setup = tuple(c.source for c in cells if {"parameters", "setup"} & set(c.metadata.get("tags", [])))
        starts = {tagged(c, ANSWER): i for i, c in enumerate(cells) if tagged(c, ANSWER)}
        for end, cell in enumerate(cells):
            if (name := tagged(cell, CHECK)) is not None:
                assert name in starts, f"{path.name}: check:{name} has no answer:{name} cell before it"
                body = tuple(c.source for c in cells[starts[name] : end + 1])
                found.append(Exercise(name, path.stem, setup, body))
    return found


EXERCISES = exercises()


def code(source: str) -> str:
    """A cell's Python: IPython's magics (%matplotlib inline) left out."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%"))


def prepared(exercise: Exercise) -> dict:
    """The namespace the notebook has when it reaches the exercise: its parameters (as the tests set
    them) and setup cells run, and what the exercise reads of earlier cells (answers.BEFORE)."""
    namespace: dict = {}
    exec(code(exercise.setup[0]), namespace)
    exec(answers.SETTINGS, namespace)
    for source in exercise.setup[1:]:
        exec(code(source), namespace)
    if exercise.id in answers.BEFORE:
        exec(answers.BEFORE[exercise.id], namespace)
    return namespace


def run_exercise(exercise: Exercise, answer: str, namespace: dict):
    """The exercise's cells with `answer` for the answer cell, in a copy of `namespace`; the check
    cell's value."""
    namespace = dict(namespace)
    for source in (answer, *exercise.cells[1:-1]):
        exec(code(source), namespace)
    check = ast.parse(code(exercise.cells[-1]))
    *statements, last = check.body
    exec(compile(ast.Module(statements, []), "<check>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<check>", "eval"), namespace)


def test_each_notebook_has_two_or_three_exercises_each_with_a_right_and_a_wrong_answer():
    per_notebook = {}
    for exercise in EXERCISES:
        per_notebook.setdefault(exercise.notebook, []).append(exercise.id)
    assert len(per_notebook) == 5 and all(2 <= len(ids) <= 3 for ids in per_notebook.values()), per_notebook
    ids = [e.id for e in EXERCISES]
    assert len(ids) == len(set(ids)) and set(ids) == set(answers.RIGHT) == set(answers.WRONG)


def test_the_notebooks_leave_their_answers_open():
    """An answer cell holds `...` for the student (or, for a model, a start that is not the answer)."""
    for exercise in EXERCISES:
        assert exercise.cells[0].strip() != answers.RIGHT[exercise.id].strip(), exercise.id
        if exercise.id not in answers.TRAINS:
            assert "..." in exercise.cells[0], f"{exercise.id}: its answer cell gives the answer away"


def marked(exercise: Exercise):
    """Integration: an exercise that trains, or reads pretrain's module (published_module trains it)."""
    costly = exercise.id in answers.TRAINS | answers.READS_MODULE
    marks = [pytest.mark.integration] if costly else []
    return pytest.param(exercise, id=exercise.id, marks=marks)


@pytest.mark.parametrize("exercise", [marked(e) for e in EXERCISES])
def test_a_check_cell_passes_the_right_answer_and_fails_a_wrong_one(exercise, request):
    request.getfixturevalue("transfer_project" if exercise.id in answers.READS_MODULE else "project")
    namespace = prepared(exercise)
    right = run_exercise(exercise, answers.RIGHT[exercise.id], namespace)
    assert right.passed, f"{exercise.id}: the reference answer failed: {right}"
    wrong = run_exercise(exercise, answers.WRONG[exercise.id], namespace)
    assert not wrong.passed, f"{exercise.id}: a wrong answer passed: {wrong}"
    assert str(wrong).startswith("❌") and str(right).startswith("✅")


def test_an_open_answer_is_not_yet_right():
    from pipeline.lecture import exercises as checks

    assert not checks.perceptron_and([..., ...], ...) and "replace the `...`" in str(checks.roc_auc(...))


@pytest.mark.integration
def test_as_good_compares_only_runs_trained_alike(project):
    """A run of the other experiment on another number of examples is no comparison."""
    import pipeline
    from pipeline.lecture import exercises as checks

    pipeline.train("mlp", epochs=1, limit=100)
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(10, "softmax")])
    mine = pipeline.fit(model, "mlp", name="linear", epochs=1, limit=150)
    result = checks.as_good(mine, "mlp", max_params=20_000)
    assert not result and "no finished run of mlp trained on as many examples" in result.message


def test_as_good_refuses_a_model_over_the_budget():
    from types import SimpleNamespace

    from pipeline.lecture import exercises as checks

    big = SimpleNamespace(metrics={"model_params": 53_290})
    result = checks.as_good(big, "cnn-valid", max_params=20_000)
    assert not result and result.message == "your model has 53,290 parameters; stay under 20,000"
