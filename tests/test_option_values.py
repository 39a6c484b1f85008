"""Every numeric option of every command, given the values a user or a script passes by mistake (huge, negative,
infinite, NaN, empty, not a number): an exit code from the README's table and at most one error line, never a
traceback. The options are found by walking the command tree, so a new option is covered the day it is added.

Each command is given inputs (or, for `serve`, a model) that do not exist, so a value that is accepted ends at
that check (exit 3, 6 or 9) before any model or data is loaded and before any server starts.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.errors import ExitCode

runner = CliRunner()
EXIT_CODES = {int(code) for code in ExitCode}
NASTY = ["inf", "-inf", "nan", "NaN", "", "  ", "-1", "0", "1e309", "99999999999999999999",
         "-99999999999999999999", "1e-400", "0x10", "1_000", "3.5", "2**31", "１２"]


def _base_arguments(command: str, tmp_path) -> list[str]:
    return {
        "ocr": ["ocr", str(tmp_path / "missing.png"), "--offline"],
        "ask": ["ask", str(tmp_path / "missing.png"), "What is it?", "--offline"],
        "finetune": ["finetune", "--data", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o")],
        "eval": ["eval", "--data", str(tmp_path / "missing.jsonl"), "--offline"],
        "serve": ["serve", "--model", str(tmp_path / "no-model"), "--offline"],
    }[command]


def _numeric_options() -> list[tuple[str, str]]:
    found = []
    for name, command in get_command(app).commands.items():
        for param in getattr(command, "params", []):
            numeric = _type_name(param) in ("integer", "float", "integer range", "float range")
            if param.param_type_name == "option" and not param.is_flag and numeric:
                found.append((name, param.opts[0]))
    return found


def _type_name(param) -> str:
    """The value type an option parses, across typer versions: its click type's name, or the metavar vlmcli gives
    every numeric option it checks (typer 0.29 keeps no click type on its parameters)."""
    kind = getattr(param, "type", None)
    return getattr(kind, "name", None) or (getattr(param, "metavar", None) or "").lower()


OPTIONS = _numeric_options()


def test_the_walk_finds_the_numeric_options():
    assert {("ocr", "--max-new-tokens"), ("ocr", "--page-timeout"), ("ask", "--top-k"), ("ask", "--page"),
            ("finetune", "--learning-rate"), ("finetune", "--stage"), ("eval", "--allow-failures")} <= set(OPTIONS)
    assert {command for command, _ in OPTIONS} == {"ocr", "ask", "finetune", "eval", "serve"}


def _check(command: str, option: str, value: str, tmp_path) -> None:
    arguments = _base_arguments(command, tmp_path)
    if command == "finetune" and option != "--stage":
        arguments += ["--stage", "1"]
    result = runner.invoke(app, [*arguments, option, value])
    assert result.exit_code in EXIT_CODES, (option, value, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (option, value, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("vlmcli: error:")]
    assert len(errors) <= 1 and "Traceback" not in result.stderr, (option, value, result.stderr)
    if result.exit_code != ExitCode.usage:
        assert result.exit_code in (ExitCode.input, ExitCode.dependency, ExitCode.model), (option, value,
                                                                                           result.output)


@pytest.mark.parametrize("command, option", OPTIONS)
def test_nasty_values(command, option, tmp_path):
    for value in NASTY:
        _check(command, option, value, tmp_path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.sampled_from(OPTIONS),
       value=st.one_of(st.integers().map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                       st.text(max_size=6), st.sampled_from(NASTY)))
def test_any_value(choice, value, tmp_path):
    command, option = choice
    if value.startswith("-") and value.lstrip("-").isalpha():
        return  # an option name, not a value: click's own business
    _check(command, option, value, tmp_path)
