"""Confined API paths (services/api/paths.py) as pure functions on a real file tree; the HTTP side
(422 naming the field) is in test_api.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.api.paths import confine, outside, parse_roots, path_fields
from services.control.jobspec import JobSpec


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "data").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "data" / "a.jsonl").write_text("{}\n")
    (elsewhere / "secret.jsonl").write_text("{}\n")
    (root / "inner-link").symlink_to(root / "data")  # a link that stays inside is fine
    (root / "out-link").symlink_to(elsewhere)
    return root, elsewhere


def spec(**sections) -> JobSpec:
    return JobSpec.parse({"model": {"path": "builtin:tiny"}, "data": {"train": "x.jsonl"}, **sections})


def test_inside_paths_pass(tree):
    root, _ = tree
    roots = (root,)
    assert outside(str(root / "data" / "a.jsonl"), roots) is None
    assert outside(str(root / "inner-link" / "a.jsonl"), roots) is None
    assert outside(str(root / "data" / "*.jsonl"), roots) is None
    assert outside(str(root / "not-yet-there.jsonl"), roots) is None  # missing: the job reports it
    assert outside("data/a.jsonl", roots, cwd=root) is None  # relative to the jobs' working directory


def test_escapes_are_caught(tree):
    root, elsewhere = tree
    roots = (root,)
    assert "outside" in outside(str(elsewhere / "secret.jsonl"), roots)
    assert "outside" in outside(str(root / ".." / "elsewhere" / "secret.jsonl"), roots)  # `..`
    assert "outside" in outside(str(root / "out-link" / "secret.jsonl"), roots)  # symlink out
    assert "outside" in outside("../elsewhere/secret.jsonl", roots, cwd=root)
    assert "outside" in outside(str(root / "out-link" / "*.jsonl"), roots)  # glob through a link
    assert "outside" in outside(str(root / "*" / "secret.jsonl"), roots)  # a glob match through a link
    assert "contains" in outside(str(root), roots)  # a folder holding a link out
    assert "outside" in outside(str(tree[0]) + "-sibling/x", roots)  # a name prefix is not a parent


def test_cycles_in_a_folder_end(tree):
    root, _ = tree
    (root / "data" / "loop").symlink_to(root / "data")
    assert outside(str(root / "data"), (root,)) is None


def test_every_path_field_is_checked_and_named(tree):
    root, elsewhere = tree
    bad = str(elsewhere / "secret.jsonl")
    job = spec(model={"path": str(elsewhere)}, data={"train": bad, "eval": bad},
               trainer={"tracking": {"mlflow_tracking_uri": f"sqlite:///{elsewhere}/mlflow.db"}})
    errors = confine(job, (root,))
    assert [e["field"] for e in errors] == ["model.path", "data.train", "data.eval",
                                            "trainer.tracking.mlflow_tracking_uri"]
    assert all(str(root) in e["message"] for e in errors)
    servers = spec(data={"train": str(root / "data" / "a.jsonl")},
                   trainer={"tracking": {"mlflow_tracking_uri": "https://mlflow.example"}})
    assert confine(servers, (root,)) == []  # builtin: models and tracking servers are not paths


def _string_fields(model, prefix=""):
    """Dotted names of every str-typed leaf of a pydantic model (the places a path could hide)."""
    from pydantic import BaseModel

    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _string_fields(value, f"{prefix}{name}.")
        elif "str" in str(info.annotation):
            yield f"{prefix}{name}"


# str fields of a JobSpec that are not file-system paths (a new path field must join path_fields).
NOT_PATHS = {"name", "data.format", "data.prompt_template", "data.default_task", "data.task_map",
             "data.on_bad_rows", "algorithm.loss", "algorithm.advantage", "algorithm.loss_hparams",
             "algorithm.advantage_hparams", "rollout.stop", "rollout.dtype", "trainer.loggers",
             "trainer.tracking.project", "trainer.tracking.run_name", "trainer.tracking.tags",
             "verifier.url", "verifier.extraction", "learner.resources", "rollout.resources",
             "infra.redis_url", "infra.ray_address"}


def test_every_string_field_of_a_jobspec_is_classified():
    job = spec(model={"path": "/m"}, data={"train": "/t", "eval": "/e"},
               trainer={"tracking": {"mlflow_tracking_uri": "/ml"}})
    checked = {field for field, _ in path_fields(job)}
    unclassified = set(_string_fields(job)) - checked - NOT_PATHS
    assert not unclassified, f"classify these JobSpec fields in services/api/paths.py: {sorted(unclassified)}"


def test_roots_setting():
    assert parse_roots(f"/data{os.pathsep}/srv/x,/opt") == (Path("/data"), Path("/srv/x"), Path("/opt"))
    with pytest.raises(ValueError, match="allowed_roots"):
        parse_roots("data")
    with pytest.raises(ValueError, match="allowed_roots"):
        parse_roots(" , ")
