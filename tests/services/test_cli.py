"""The `simko` console script, run as a real subprocess."""
import subprocess
import sys
from pathlib import Path

import pytest

SIMKO = [str(Path(sys.executable).parent / "simko")]
COMMANDS = ["demo", "train", "eval", "submit", "status", "cancel", "logs", "serve", "report", "make-tiny-model"]


def run(*args):
    return subprocess.run(SIMKO + list(args), capture_output=True, text=True, timeout=60)


def test_help_lists_every_subcommand():
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("args", [["demo"], ["train", "configs/tiny.yaml"], ["report", "runs/x"],
                                  ["submit", "c.yaml", "--api", "http://127.0.0.1:1"], ["serve", "api"]])
def test_unbuilt_subcommands_fail_clearly(args):
    result = run(*args)
    assert result.returncode == 2
    assert "not available yet" in result.stderr and "issue" in result.stderr


def test_unknown_subcommand_is_a_usage_error():
    result = run("fly")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
