"""The micro-batcher: requests from concurrent clients wait in a bounded queue; one worker thread merges them
into batches bounded by a token budget and a short wait, and runs each batch with one model call per kind."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtst.serve.backend import Backend
from mtst.serve.errors import ServeError

EMBED, PREDICT = "embed", "predict"


@dataclass(frozen=True)
class BatchLimits:
    """How requests are merged, and how many may wait."""

    max_batch_tokens: int = 16384  # tokens (after truncation) of one batch; one request always fits
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for company
    max_batch_requests: int = 256  # requests merged into one batch; 1 turns batching off
    max_queue: int = 512  # requests waiting; past this the answer is 429

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_batch_requests", "max_queue"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms!r}.")


@dataclass
class Job:
    """One request's texts and options; ``deliver`` hands the result (or a ServeError) back to its event loop."""

    kind: str
    texts: list[str]
    deliver: Callable[[Any], None]
    normalize: bool = True
    tasks: list[str] | None = None
    truncate: bool = True
    tokens: list[int] = field(default_factory=list)  # filled by the worker: tokens per text before truncation


@dataclass
class Result:
    """What a job gets back: embeddings ``[n, dim]`` or predictions, which texts were truncated, tokens used."""

    value: Any
    truncated: list[bool]
    tokens: int


_STOP = object()


class Batcher:
    """Owns the queue and the worker thread; ``submit`` is called from the event loop."""

    def __init__(
        self,
        backend: Backend,
        limits: BatchLimits,
        *,
        on_batch: Callable[[int, int, int], None] | None = None,
    ) -> None:
        self.backend = backend
        self.limits = limits
        self.on_batch = on_batch  # (requests, texts, tokens) of each batch run, for metrics
        self._queue: queue.Queue = queue.Queue(maxsize=limits.max_queue)
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="mtst-batcher", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        """Requests waiting in the queue."""
        return self._queue.qsize()

    async def submit(self, job_kind: str, texts: Sequence[str], **options: Any) -> Result:
        """Queue a request and wait for its result; 429 when the queue is full, 503 once shutting down."""
        if self._closing:
            raise ServeError(503, "unavailable", "the server is shutting down; retry on another instance.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def deliver(outcome: Any) -> None:  # worker thread -> event loop
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for this answer any more
                loop.call_soon_threadsafe(_settle, future, outcome)

        job = Job(job_kind, list(texts), deliver, **options)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise ServeError(
                429,
                "overloaded",
                f"the queue is full ({self.limits.max_queue} requests waiting); retry after a short wait.",
                headers={"Retry-After": "1"},
            ) from None
        return await future

    def close(self, timeout: float | None = 60.0) -> None:
        """Refuse new requests, finish every queued one, then stop the worker."""
        self._closing = True
        self._queue.put(_STOP)  # blocks only while the queue is full; the worker keeps taking from it
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        carry: Job | None = None
        stopping = False
        while True:
            if carry is not None:
                first, carry = carry, None
            elif stopping:
                try:
                    first = self._queue.get_nowait()
                except queue.Empty:
                    return
            else:
                first = self._queue.get()
            if first is _STOP:
                stopping = True
                continue
            batch, carry, saw_stop = self._collect(first, drain=stopping)
            stopping = stopping or saw_stop
            if batch:
                self._run_batch(batch)

    def _collect(self, first: Job, *, drain: bool) -> tuple[list[Job], Job | None, bool]:
        """A batch that starts with ``first``: more jobs until the wait, the token budget or the count runs out."""
        lim = self.limits
        batch: list[Job] = []
        tokens = 0
        deadline = time.monotonic() + lim.max_wait_ms / 1000
        job: Any = first
        while True:
            if job is _STOP:
                return batch, None, True
            if self._admit(job):
                job_tokens = sum(min(n, self.backend.limit(job.kind)) for n in job.tokens)
                if batch and tokens + job_tokens > lim.max_batch_tokens:
                    return batch, job, False  # it opens the next batch
                batch.append(job)
                tokens += job_tokens
            if len(batch) >= lim.max_batch_requests:
                return batch, None, False
            remaining = 0.0 if drain else deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return batch, None, False

    def _admit(self, job: Job) -> bool:
        """Count the job's tokens; refuse it (413) if it must not be truncated and is too long."""
        try:
            job.tokens = self.backend.count_tokens(job.texts)
        except Exception as e:  # a tokenizer failure is this request's problem, not the batch's
            job.deliver(ServeError(422, "tokenizer", f"could not tokenize the input: {e}"))
            return False
        if not job.truncate:
            limit = self.backend.limit(job.kind)
            too_long = [i for i, n in enumerate(job.tokens) if n > limit]
            if too_long:
                job.deliver(
                    ServeError(
                        413,
                        "too_long",
                        f"input {too_long[0]} has {job.tokens[too_long[0]]} tokens, more than max_length="
                        f"{limit} ({len(too_long)} such input(s)); send truncate: true to cut "
                        "them to max_length, or shorten them.",
                    )
                )
                return False
        return True

    def _run_batch(self, batch: list[Job]) -> None:
        if self.on_batch is not None:
            tokens = sum(min(n, self.backend.limit(j.kind)) for j in batch for n in j.tokens)
            self.on_batch(len(batch), sum(len(j.texts) for j in batch), tokens)
        for kind in (EMBED, PREDICT):
            jobs = [j for j in batch if j.kind == kind]
            if jobs:
                try:
                    self._run_kind(kind, jobs)
                except Exception as e:  # the model failed: every job of this call gets a 500 in the error shape
                    message = f"the model failed on this batch: {type(e).__name__}: {e}"
                    for j in jobs:
                        j.deliver(ServeError(500, "backend", message))

    def _run_kind(self, kind: str, jobs: list[Job]) -> None:
        texts = [t for j in jobs for t in j.texts]
        if kind == EMBED:
            values: Any = self.backend.embed(texts, normalize=False)  # [n, dim]; each job normalizes its rows
        else:
            wanted = None if any(j.tasks is None for j in jobs) else sorted({t for j in jobs for t in j.tasks or []})
            values = self.backend.predict(texts, wanted)
        start = 0
        for j in jobs:
            part = values[start : start + len(j.texts)]
            start += len(j.texts)
            if kind == EMBED:
                part = _l2_normalize(part) if j.normalize else part
            elif j.tasks is not None:
                part = [{t: p[t] for t in j.tasks if t in p} for p in part]
            limit = self.backend.limit(kind)
            j.deliver(Result(part, [n > limit for n in j.tokens], sum(min(n, limit) for n in j.tokens)))


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # [n, 1]
    return x / np.maximum(norms, 1e-12)  # as torch.nn.functional.normalize


def _settle(future: asyncio.Future, outcome: Any) -> None:
    if future.done():  # the client went away
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
