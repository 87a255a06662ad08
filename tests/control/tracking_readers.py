"""Read what the trackers wrote back with each library's own reader (test helpers).

    TensorBoard   tensorboard's EventAccumulator
    W&B           the offline run's transaction log (RUN_DIR/wandb/offline-run-*/run-*.wandb), decoded
                  with the wandb SDK's own protobuf schema (wandb.proto.wandb_internal_pb2.Record).
                  wandb 0.31 dropped its Python reader of this file (wandb.sdk.internal.datastore; the Go
                  core reads it now), so the container format (LevelDB's log format with a W&B header)
                  is walked here, checksums included, as that reader did.
    MLflow        MlflowClient.get_metric_history / get_run / list_artifacts
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------------------------ TensorBoard


def read_tensorboard(logdir: Path) -> dict[str, Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    return {
        "scalars": {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in tags["scalars"]},
        "histograms": {tag: {e.step: e.histogram_value for e in acc.Histograms(tag)} for tag in tags["histograms"]},
        "tensors": {tag: {e.step: e.tensor_proto for e in acc.Tensors(tag)} for tag in tags["tensors"]},
    }


# -------------------------------------------------------------------------------------------- W&B
_BLOCK, _HEADER = 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _chunks(data: bytes, path: Path):
    ident, magic, _version = struct.unpack("<4sHB", data[:_HEADER])
    assert ident == b":W&B" and magic == 0xBEE1, f"{path}: not a W&B transaction log"
    pos = _HEADER
    while pos < len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer: zero padding
            pos += left
            continue
        if pos + _HEADER > len(data):
            break
        checksum, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        if kind == 0 and length == 0:  # preallocated, unwritten tail
            break
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == checksum, f"{path}: bad checksum at {pos}"
        pos += _HEADER + length
        yield kind, chunk


def wandb_records(path: Path):
    """Every Record (protobuf) in one .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    pending = b""
    for kind, chunk in _chunks(path.read_bytes(), path):
        if kind == _FULL:
            data = chunk
        elif kind == _FIRST:
            pending = chunk
            continue
        elif kind == _MIDDLE:
            pending += chunk
            continue
        else:
            assert kind == _LAST, f"{path}: unknown record type {kind}"
            data, pending = pending + chunk, b""
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        yield record


def read_wandb(wandb_dir: Path) -> dict[str, Any]:
    """The offline runs under `wandb_dir` (RUN_DIR/wandb), merged in file order: run ids, the config,
    and the history as {step: {key: value}}."""
    files = sorted(wandb_dir.glob("offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run under {wandb_dir}"
    run_ids, config, history, tags, names = [], {}, {}, [], []
    for path in files:
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run_ids.append(record.run.run_id)
                names.append(record.run.display_name)
                tags.extend(record.run.tags)
                for item in record.run.config.update:
                    config[item.key] = json.loads(item.value_json)
            elif kind == "config":
                for item in record.config.update:
                    config[item.key] = json.loads(item.value_json)
            elif kind == "history":
                row: dict[str, Any] = {}
                for item in record.history.item:  # nested_key: a value inside a dict-valued key
                    path = [item.key] if item.key else list(item.nested_key)
                    node = row
                    for part in path[:-1]:
                        node = node.setdefault(part, {})
                    node[path[-1]] = json.loads(item.value_json)
                step = int(row.get("_step", record.history.step.num))
                history.setdefault(step, {}).update(row)
    return {"files": files, "run_ids": run_ids, "config": config, "history": history, "tags": tags,
            "names": names}


# ----------------------------------------------------------------------------------------- MLflow


def read_mlflow(tracking_uri: str, run_id: str, keys: list[str]) -> dict[str, Any]:
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    return {
        "run": run,
        "metrics": {key: {m.step: m.value for m in client.get_metric_history(run_id, key)} for key in keys},
        "artifacts": [a.path for a in client.list_artifacts(run_id)],
        "client": client,
    }
