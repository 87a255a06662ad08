"""The `simko` console script, run as a real subprocess."""
import subprocess
import sys
from pathlib import Path

import pytest

SIMKO = [str(Path(sys.executable).parent / "simko")]
COMMANDS = ["demo", "train", "eval", "submit", "status", "cancel", "logs", "scale", "serve", "report",
            "make-tiny-model"]


def run(*args):
    return subprocess.run(SIMKO + list(args), capture_output=True, text=True, timeout=60)


def test_help_lists_every_subcommand():
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("args", [["demo"], ["report", "runs/x"], ["serve", "learner"]])
def test_unbuilt_subcommands_fail_clearly(args):
    result = run(*args)
    assert result.returncode == 2
    assert "not available yet" in result.stderr


def test_unknown_subcommand_is_a_usage_error():
    result = run("fly")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_train_rejects_invalid_config_naming_the_field(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model: {path: m}\ndata: {train: d.jsonl}\nlearner: {lr: -1}\n")
    result = run("train", str(config))
    assert result.returncode == 2
    assert "learner.lr" in result.stderr


def test_submit_validates_locally_before_sending(tmp_path):
    result = run("submit", str(tmp_path / "missing.yaml"), "--api", "http://127.0.0.1:9")
    assert result.returncode == 2 and "cannot read" in result.stderr
