"""Weights by broadcast: the publisher's tensors go to rollout engines over a torch.distributed group.

    publisher (learner rank 0)                        receiver (inside a vLLM worker)
    server = BroadcastServer(host)                    offer = <from the metadata channel>
    offer = server.publish(v, state_dict)  ------->   r = BroadcastReceiver(offer)  # request, assignment
      (packs into buckets once; the offer is          for name, t in r.tensors():    # bucket by bucket
       the metadata: version, names/dtypes/              load(name, t)
       shapes, bucket layout, rendezvous address)     r.version                       # what it got

Why a fresh small group per serving round, not one group for the job's lifetime: rollout workers
come and go (scaled, replaced, late joiners) and a busy worker is mid-generate when the learner
publishes; a fixed group would make every publish wait for every worker and break when one dies.
Here the publisher packs version v once and keeps serving it from a thread: each receiver takes a
ticket on the publisher's TCPStore, the server gathers all tickets waiting at that moment into one
round, and that round's members (rank 0 = the publisher, ranks 1..k = the receivers) form a new
gloo (CPU) or NCCL (GPU) group under a per-round store prefix and receive every bucket by one
broadcast each. Workers that sync together (the common case: all wait for the new version) share
one broadcast; a late joiner gets the current version through the same path. The group is dropped
after the round, so a dead receiver costs one failed round (its peers retry), never the job.

The server keeps only the newest version (one packed copy, like the object store's one put); a
receiver asking for an older version gets the newest, and `BroadcastReceiver.version` says which.
Peak extra memory on the receiving side is about one bucket (a tensor larger than the bucket size
gets a bucket of its own). Torch only: no Ray here; the job's registry actor carries the offers.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

BUCKET_BYTES = 256 << 20  # what one broadcast carries; the receiver's peak extra memory
ALIGN = 64  # byte alignment of each tensor inside a bucket (dtype views need aligned offsets)
# A failure detector, not a tuning knob: how long a round's members wait for each other (a member
# that died after taking its ticket fails the round after this, and its peers retry).
RENDEZVOUS_TIMEOUT_S = 120.0
_STOP = "stop"


class BroadcastError(RuntimeError):
    """A serving round failed or the publisher is gone; the receiver's weights may be torn."""


class StaleOffer(BroadcastError):
    """The publisher now serves a different tensor layout than the offer described: fetch a new offer."""


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: str  # torch dtype name without "torch.", e.g. "float32", "bfloat16"
    shape: tuple[int, ...]
    bucket: int  # index of the bucket that carries it
    offset: int  # byte offset inside that bucket

    def __post_init__(self) -> None:
        _dtype(self.dtype)  # an offer naming no torch dtype is rejected where it is decoded

    @property
    def torch_dtype(self) -> torch.dtype:
        return _dtype(self.dtype)

    @property
    def nbytes(self) -> int:
        return _numel(self.shape) * self.torch_dtype.itemsize


@dataclass(frozen=True)
class BroadcastOffer:
    """What a receiver needs before joining: plain values only, so it travels through Ray and through
    vLLM's collective_rpc (msgpack) unchanged as `to_dict()`."""

    version: int
    host: str
    port: int
    backend: str  # "gloo" | "nccl"
    tensors: tuple[TensorMeta, ...]
    bucket_sizes: tuple[int, ...]  # bytes per bucket
    finite: bool  # every value finite (checked once at publish: a receiver cannot undo a torn load)

    @property
    def layout(self) -> str:
        """Digest of names, dtypes, shapes and bucket layout: what a receiver validated."""
        text = json.dumps([[t.name, t.dtype, list(t.shape), t.bucket, t.offset] for t in self.tensors])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "BroadcastOffer":
        tensors = tuple(TensorMeta(t["name"], t["dtype"], tuple(t["shape"]), t["bucket"], t["offset"])
                        for t in data["tensors"])
        return cls(int(data["version"]), str(data["host"]), int(data["port"]), str(data["backend"]), tensors,
                   tuple(int(b) for b in data["bucket_sizes"]), bool(data["finite"]))


def plan_buckets(specs: list[tuple[str, str, tuple[int, ...]]], bucket_bytes: int = BUCKET_BYTES
                 ) -> tuple[tuple[TensorMeta, ...], tuple[int, ...]]:
    """(name, dtype, shape) in order -> metas and bucket sizes (pure). Tensors fill a bucket in order
    until the next would overflow it; one larger than `bucket_bytes` gets a bucket of its own."""
    if bucket_bytes < 1:
        raise ValueError(f"bucket_bytes must be >= 1, got {bucket_bytes}")
    metas: list[TensorMeta] = []
    sizes: list[int] = []
    for name, dtype, shape in specs:
        nbytes = _numel(shape) * _dtype(dtype).itemsize
        start = _aligned(sizes[-1]) if sizes else 0
        if not sizes or (start + nbytes > bucket_bytes and sizes[-1] > 0):
            sizes.append(0)
            start = 0
        metas.append(TensorMeta(name, dtype, tuple(int(d) for d in shape), len(sizes) - 1, start))
        sizes[-1] = start + nbytes
    return tuple(metas), tuple(sizes)


def pack(state_dict: Mapping[str, torch.Tensor], metas: tuple[TensorMeta, ...], sizes: tuple[int, ...],
         device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """The state dict copied into uint8 bucket buffers per the plan (a snapshot: the learner may
    keep training while the buffers are served)."""
    buffers = [torch.empty(size, dtype=torch.uint8, device=device) for size in sizes]
    for meta in metas:
        src = state_dict[meta.name].detach().contiguous().reshape(-1).view(torch.uint8)
        buffers[meta.bucket][meta.offset: meta.offset + meta.nbytes].copy_(src)
    return buffers


def unpack(buffer: torch.Tensor, metas: list[TensorMeta]) -> Iterator[tuple[str, torch.Tensor]]:
    """Views of one bucket's tensors (no copy)."""
    for meta in metas:
        raw = buffer[meta.offset: meta.offset + meta.nbytes]
        yield meta.name, raw.view(meta.torch_dtype).reshape(meta.shape)


def default_backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _new_group(backend: str, store, rank: int, world_size: int, timeout_s: float):
    """A process group outside torch.distributed's default one (the learner's DeepSpeed group and
    vLLM's own world group both live in these processes and must not be touched)."""
    timeout = datetime.timedelta(seconds=timeout_s)
    if backend == "gloo":
        return dist.ProcessGroupGloo(store, rank, world_size, timeout)
    if backend == "nccl":
        if not hasattr(dist, "ProcessGroupNCCL"):
            raise BroadcastError("backend nccl: this torch build has no NCCL")
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = timeout
        return dist.ProcessGroupNCCL(store, rank, world_size, options)
    raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")


class BroadcastServer:
    """The publisher's side: a TCPStore it hosts, the newest packed version, and a serving thread."""

    def __init__(self, host: str = "127.0.0.1", *, backend: str | None = None, bucket_bytes: int = BUCKET_BYTES,
                 timeout_s: float = RENDEZVOUS_TIMEOUT_S):
        self.host, self.bucket_bytes, self.timeout_s = host, bucket_bytes, timeout_s
        self.backend = backend or default_backend()
        self._device = "cuda" if self.backend == "nccl" else "cpu"
        # Port 0: the OS picks a free one (no port races between jobs on one node).
        self.store = dist.TCPStore(host, 0, is_master=True, wait_for_workers=False,
                                   timeout=datetime.timedelta(seconds=timeout_s))
        self.port = self.store.port
        self._lock = threading.Lock()
        self._offer: BroadcastOffer | None = None
        self._buffers: list[torch.Tensor] = []
        self.rounds = 0  # serving rounds completed (tests, metrics)
        self._thread = threading.Thread(target=self._serve, name="weight-broadcast", daemon=True)
        self._thread.start()

    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> BroadcastOffer:
        """Pack `state_dict` as `version` and serve it from now on; returns its offer."""
        with self._lock:
            if self._offer is not None and version <= self._offer.version:
                raise ValueError(f"version {version} is not newer than {self._offer.version}")
        specs = [(name, str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in state_dict.items()]
        metas, sizes = plan_buckets(specs, self.bucket_bytes)
        finite = all(bool(torch.isfinite(t).all()) for t in state_dict.values() if t.is_floating_point())
        buffers = pack(state_dict, metas, sizes, self._device)
        offer = BroadcastOffer(version, self.host, self.port, self.backend, metas, sizes, finite)
        with self._lock:  # a round in progress keeps its own references to the previous buffers
            self._offer, self._buffers = offer, buffers
        return offer

    def latest_version(self) -> int:
        with self._lock:
            return 0 if self._offer is None else self._offer.version

    def offer(self) -> BroadcastOffer | None:
        with self._lock:
            return self._offer

    def close(self) -> None:
        """Stop serving: a stop ticket wakes the thread, which answers later tickets with 'closed'."""
        if self._thread.is_alive():
            ticket = self.store.add("tickets", 1)
            self.store.set(f"want/{ticket}", _STOP)
            self._thread.join(timeout=self.timeout_s)

    # ------------------------------------------------------------------ serving
    def _serve(self) -> None:
        # Its own connection: a TCPStore client serialises its calls, so a blocking wait here would
        # otherwise hold up close() on the master's connection.
        store = dist.TCPStore(self.host, self.port, is_master=False, timeout=datetime.timedelta(seconds=self.timeout_s))
        served = 0  # tickets handled so far (they are numbered 1, 2, ...)
        while True:
            try:  # blocks until ticket served+1 says what it wants (no polling interval to calibrate)
                store.wait([f"want/{served + 1}"], datetime.timedelta(seconds=self.timeout_s))
            except dist.DistStoreError:
                if store.add("tickets", 0) > served + 1:
                    served += 1  # that ticket's taker died between its two calls, later ones wait: skip it
                continue
            wants: dict[int, str] = {}
            for ticket in range(served + 1, store.add("tickets", 0) + 1):
                if not store.check([f"want/{ticket}"]):
                    break  # taken but not yet described: the next round
                wants[ticket] = store.get(f"want/{ticket}").decode()
            served = max(wants)
            stop = _STOP in wants.values()
            with self._lock:
                offer, buffers = self._offer, self._buffers
            members: list[int] = []
            for ticket, want in wants.items():
                if not stop and offer is not None and want == offer.layout:
                    members.append(ticket)
                else:
                    reply = {"closed": True} if stop else {"refetch": True}
                    store.set(f"assign/{ticket}", json.dumps(reply))
            if members:
                self._round(store, offer, buffers, members)
            for ticket in wants:
                store.delete_key(f"want/{ticket}")
            if stop:
                return

    def _round(self, store, offer: BroadcastOffer, buffers: list[torch.Tensor], members: list[int]) -> None:
        self.rounds += 1
        world = len(members) + 1
        for rank, ticket in enumerate(members, start=1):
            store.set(f"assign/{ticket}", json.dumps({"round": self.rounds, "rank": rank, "world": world,
                                                      "version": offer.version}))
        try:
            group = _new_group(self.backend, dist.PrefixStore(f"round/{self.rounds}/", store), 0, world,
                               self.timeout_s)
            for buffer in buffers:
                group.broadcast(buffer, 0).wait()
        except (RuntimeError, dist.DistError) as exc:  # a member died or stalled: its peers retry
            log.warning("weight broadcast round %d (%d receivers) failed: %s", self.rounds, len(members), exc)


class BroadcastReceiver:
    """One receive: take a ticket, wait for the assignment, then `tensors()` joins the round's group
    and yields (name, tensor) bucket by bucket. `version` is known once constructed."""

    def __init__(self, offer: BroadcastOffer, *, device: str | torch.device = "cpu",
                 timeout_s: float = RENDEZVOUS_TIMEOUT_S):
        self.offer, self.device, self.timeout_s = offer, device, timeout_s
        try:
            self._store = dist.TCPStore(offer.host, offer.port, is_master=False,
                                        timeout=datetime.timedelta(seconds=timeout_s))
            ticket = self._store.add("tickets", 1)
            self._store.set(f"want/{ticket}", offer.layout)
            assignment = json.loads(self._store.get(f"assign/{ticket}"))  # blocks until the server answers
            self._store.delete_key(f"assign/{ticket}")
        except (RuntimeError, dist.DistError) as exc:
            raise BroadcastError(f"weight publisher at {offer.host}:{offer.port} unreachable: {exc}") from exc
        if assignment.get("refetch"):
            raise StaleOffer(f"the publisher no longer serves layout {offer.layout} (v{offer.version})")
        if assignment.get("closed"):
            raise BroadcastError(f"the weight publisher at {offer.host}:{offer.port} closed")
        self.version: int = assignment["version"]
        self._assignment = assignment
        self.buckets_received = 0  # how far tensors() got (a torn load stops short)

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        a = self._assignment
        by_bucket: list[list[TensorMeta]] = [[] for _ in self.offer.bucket_sizes]
        for meta in self.offer.tensors:
            by_bucket[meta.bucket].append(meta)
        try:
            group = _new_group(self.offer.backend, dist.PrefixStore(f"round/{a['round']}/", self._store), a["rank"],
                               a["world"], self.timeout_s)
            for size, metas in zip(self.offer.bucket_sizes, by_bucket):
                buffer = torch.empty(size, dtype=torch.uint8, device=self.device)
                group.broadcast(buffer, 0).wait()
                self.buckets_received += 1
                yield from unpack(buffer, metas)
                del buffer  # the next bucket replaces it: peak extra memory ~ one bucket
        except (RuntimeError, dist.DistError) as exc:
            raise BroadcastError(f"weight broadcast round {a['round']} failed after {self.buckets_received} of "
                                 f"{len(self.offer.bucket_sizes)} buckets: {exc}") from exc

    def receive_all(self) -> dict[str, torch.Tensor]:
        """Every tensor as an owned copy (tests, and receivers without an in-place loader)."""
        return {name: t.clone() for name, t in self.tensors()}


class BroadcastWeights:
    """WeightPublisher and broadcast source in one process (tests, single-process runs): the offer is
    handed over directly; services.wire.weight_registry carries it between processes."""

    def __init__(self, host: str = "127.0.0.1", *, server: BroadcastServer | None = None, **server_kwargs):
        self.server = server or BroadcastServer(host, **server_kwargs)

    def publish(self, version: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.server.publish(version, state_dict)

    def latest_version(self) -> int:
        return self.server.latest_version()

    def offer(self, version: int) -> BroadcastOffer:
        from services.wire.weights import WeightVersionUnavailable

        offer = self.server.offer()
        if offer is None or offer.version < version:
            raise WeightVersionUnavailable(version)
        return offer

    def close(self) -> None:
        self.server.close()


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype: unknown torch dtype {name!r}")
    return dtype
