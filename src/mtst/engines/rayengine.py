"""The Ray Data engine: pending fragments flow through an actor pool that holds one encoder per actor.

Each actor loads the model once, checks that its copy has the driver's fingerprint, then reads, encodes and
writes one fragment per call, with the same code as the local engine: same shards, same manifest. Shards are
written by the actors, so the output folder must be one that every node sees (a shared file system).
"""

from __future__ import annotations

import builtins
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mtst.engines.local import ModelSpec, ShardSettings, encode_fragment, load_encoder
from mtst.engines.manifest import model_fingerprint
from mtst.engines.readers import Fragment

# A local Ray needs an object store only for fragment numbers and the actors' arguments.
_LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2


def import_ray() -> Any:
    """``ray`` with Ray Data, or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError("--engine ray needs Ray Data: pip install 'mtst[ray]' (or pip install 'ray[data]').") from e
    return ray


class FragmentEncoder:
    """Ray Data callable class: one encoder per actor; each call encodes and writes the fragments it is given."""

    def __init__(
        self,
        spec: ModelSpec,
        fingerprint: str,
        fragments: Sequence[Fragment],
        settings: ShardSettings,
        threads: int,
    ) -> None:
        torch.set_num_threads(threads)
        self.encoder = load_encoder(spec)
        if model_fingerprint(self.encoder) != fingerprint:
            raise ValueError(
                f"The Ray worker on {socket.gethostname()} loaded another model from {spec.name_or_path} than the "
                "driver did (their weights differ): give every node the same model files."
            )
        self.fragments = {f.index: f for f in fragments}
        self.settings = settings

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        index = batch["index"]  # [k] fragment numbers
        rows, errors = [], []
        for i in index:
            try:
                rows.append(encode_fragment(self.encoder, self.fragments[int(i)], self.settings))
                errors.append("")
            except (ValueError, OSError) as e:  # bad input: sent back as data (Ray would keep only a traceback)
                rows.append(0)
                errors.append(f"{type(e).__name__}:{e}")
        return {"index": index, "rows": np.asarray(rows, dtype=np.int64), "error": np.asarray(errors, dtype=object)}


def raise_worker_error(error: str) -> None:
    """Raise a worker's ``"TypeName:message"`` in the driver as that built-in error type."""
    name, _, message = error.partition(":")
    kind = getattr(builtins, name, None)
    if not (isinstance(kind, type) and issubclass(kind, (ValueError, OSError))):
        kind = ValueError
    raise kind(message)


def run_ray(
    spec: ModelSpec,
    fingerprint: str,
    fragments: Sequence[Fragment],
    settings: ShardSettings,
    *,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    address: str | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Encode the fragments on Ray: joins ``address``, else starts a local Ray sized to the actor pool.

    ``workers`` defaults to as many actors as the cluster's CPUs allow. Returns the actor pool's size.
    """
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            n = workers or max(1, int((os.cpu_count() or 1) // max(cpus_per_worker, 1e-9)))
            ray.init(
                num_cpus=max(1, int(round(n * cpus_per_worker))),
                include_dashboard=False,
                logging_level=logging.WARNING,
                object_store_memory=_LOCAL_OBJECT_STORE_BYTES,
            )
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_worker, 1e-9)))
        workers = max(1, min(workers, len(fragments)))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # mtst shows one bar over all rows
        context.print_on_execution_start = False
        ds = ray.data.from_items([{"index": f.index} for f in fragments], override_num_blocks=len(fragments))
        ds = ds.map_batches(
            FragmentEncoder,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={
                "spec": spec,
                "fingerprint": fingerprint,
                "fragments": list(fragments),
                "settings": settings,
                "threads": max(1, int(cpus_per_worker)),
            },
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
        )
        for batch in ds.iter_batches(batch_size=None):
            for error in batch["error"]:
                if error:
                    raise_worker_error(str(error))
            if on_rows is not None:
                on_rows(int(batch["rows"].sum()))
    finally:
        if started:
            ray.shutdown()
    return workers
