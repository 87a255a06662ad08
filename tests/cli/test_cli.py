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


@pytest.mark.parametrize("args", [["serve", "learner"]])
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


def test_serve_options_reach_the_parser_before_or_after_the_component():
    from services.cli import parse_args

    after = parse_args(["serve", "verifier", "--port", "9101", "--workers", "3"])
    before = parse_args(["serve", "--port", "9101", "--workers", "3", "verifier"])
    assert (after.port, after.workers, after.extra) == (before.port, before.workers, before.extra) == (9101, 3, [])
    assert parse_args(["serve", "verifier"]).workers is None  # so SIMKO_VERIFIER_WORKERS decides
    rollout = parse_args(["serve", "rollout", "--job", "j1", "--model", "m"])
    assert rollout.extra == ["--job", "j1", "--model", "m"]


def test_serve_rejects_an_unknown_option_for_a_non_rollout_component():
    result = run("serve", "verifier", "--bogus", "1")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
