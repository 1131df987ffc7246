"""pipeline.errors: the one owner of an exception's first line, and of the line that names the
extra an optional feature needs."""

import sys

import pytest

from pipeline import cli
from pipeline.errors import LONGEST, UserError, first_line, require


def test_the_first_line_of_an_exception():
    assert first_line(ValueError("  bad value\nTraceback (most recent call last): ...")) == "bad value"
    assert first_line(ValueError("")) == "ValueError"  # no message: its type
    assert first_line(KeyError("key"), typed=True) == "KeyError: 'key'"
    assert first_line(OSError(), typed=True) == "OSError"
    assert first_line(RuntimeError("x" * 1000)) == "x" * LONGEST
    hidden = first_line(RuntimeError("engine for postgresql://u:hunter2pw@db/x failed"))
    assert hidden == "engine for postgresql://u:***@db/x failed"


def test_a_missing_optional_package_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "flask_wtf", None)  # as if it were not installed
    with pytest.raises(UserError, match=r"^--auth needs the 'auth' extra .*'dl-pipeline\[auth\]'$"):
        require("flask_wtf", extra="auth", feature="--auth")
    assert require("json", extra="none", feature="this test").dumps(1) == "1"


@pytest.mark.parametrize(
    "args", [["train-all", "--executor", "ray", "--quiet", "mlp"], ["sweep", "cnn-same"]], ids=" ".join
)
def test_ray_commands_say_which_extra_they_need(project, capsys, monkeypatch, args):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs the 'ray' extra" in err
