"""TensorBoard: event files in RUN_DIR/tensorboard, written with TensorBoard's own writer and protos
(no TensorFlow, no torch).

    every scalar          -> a scalar (tag = the metric key, so namespaces become TensorBoard groups)
    dist/entropy_hist     -> a histogram (bucket i = [edges[i], edges[i+1]))
    eval/pass_at_k table  -> text (a markdown table per evaluation step)
    once at open          -> a custom-scalars layout: Lambda^(k) and pass@K as multi-line charts

A resumed job appends a new event file to the same directory; TensorBoard shows one run.
`tensorboard --logdir runs/` views them.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from services.control.tracking.base import TrackerContext
from services.control.tracking.step import markdown_table

FLUSH_SECS = 10  # what a live `tensorboard` lags behind the job at most
LAYOUT_TAG = "custom_scalars__config__"  # the tag the custom-scalars plugin reads its layout from
LAYOUT = (  # (category, [(chart title, tag regex)])
    ("SimKO", [("Lambda^(k) and Lambda (sampled)", r"dist/lambda_.*"), ("token entropy", r"dist/entropy_(mean|p\d+)"),
               ("pass@K", r"eval/pass@\d+")]),
    ("training", [("reward", r"reward/.*"), ("loss", r"loss/(policy|approx_kl|clip_frac)"),
                  ("throughput (tokens/s)", r"perf/.*tokens_per_s")]),
)


def histogram_proto(counts: Sequence[float], edges: Sequence[float]) -> HistogramProto:
    """TensorBoard buckets are given by their right edge; min/max bound the occupied range."""
    centres = [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    occupied = [i for i, c in enumerate(counts) if c > 0]
    lo = edges[occupied[0]] if occupied else edges[0]
    hi = edges[occupied[-1] + 1] if occupied else edges[-1]
    pairs = list(zip(counts, centres, strict=True))
    return HistogramProto(min=lo, max=hi, num=sum(counts), sum=sum(c * x for c, x in pairs),
                          sum_squares=sum(c * x * x for c, x in pairs), bucket_limit=list(edges[1:]),
                          bucket=list(counts))


def text_value(tag: str, text: str) -> Summary.Value:
    tensor = TensorProto(dtype="DT_STRING", string_val=[text.encode()],
                         tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    return Summary.Value(tag=tag, tensor=tensor, metadata=metadata)


def layout_value() -> Summary.Value:
    layout = layout_pb2.Layout(category=[
        layout_pb2.Category(title=title, chart=[
            layout_pb2.Chart(title=chart, multiline=layout_pb2.MultilineChartContent(tag=[regex]))
            for chart, regex in charts])
        for title, charts in LAYOUT])
    tensor = TensorProto(dtype="DT_STRING", string_val=[layout.SerializeToString()],
                         tensor_shape=TensorShapeProto())
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="custom_scalars"))
    return Summary.Value(tag=LAYOUT_TAG, tensor=tensor, metadata=metadata)


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, ctx: TrackerContext):
        self.logdir = ctx.run_dir / "tensorboard"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.writer = EventFileWriter(str(self.logdir), flush_secs=FLUSH_SECS)
        self._write(0, None, [layout_value()])

    def _write(self, step: int, wall_time: float | None, values: list[Summary.Value]) -> None:
        event = Event(step=step, wall_time=time.time() if wall_time is None else wall_time,
                      summary=Summary(value=values))
        self.writer.add_event(event)

    def log_metrics(self, step: int, scalars: Mapping[str, float], wall_time: float) -> None:
        self._write(step, wall_time, [Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()])

    def log_histogram(self, step: int, tag: str, counts: Sequence[float], edges: Sequence[float]) -> None:
        self._write(step, None, [Summary.Value(tag=tag, histo=histogram_proto(counts, edges))])

    def log_table(self, step: int, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self._write(step, None, [text_value(tag, markdown_table(list(columns), rows))])

    def close(self, success: bool = True) -> None:
        self.writer.close()  # flushes
