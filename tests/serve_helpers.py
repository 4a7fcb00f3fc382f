"""Helpers of the server tests: a tiny multi-task model on disk, and uvicorn on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENTITY_LABELS = ("O", "B-PER", "I-PER")


def build_tiny_multitask(tiny_model_dir: Path, out: Path) -> Path:
    """Save a MultiTaskModel (classification "topic" + token classification "entities") on the tiny backbone."""
    import torch

    from mtst.config import TaskConfig
    from mtst.encoder import SentenceEncoder
    from mtst.model import MultiTaskModel
    from mtst.tasks import build_task

    torch.manual_seed(0)
    encoder = SentenceEncoder.from_pretrained(tiny_model_dir, device="cpu")
    model = MultiTaskModel(
        encoder,
        [
            build_task(TaskConfig(name="topic", type="classification", labels=("a", "b"))),
            build_task(TaskConfig(name="entities", type="token_classification", labels=ENTITY_LABELS)),
        ],
    )
    return model.save(out)


@contextmanager
def running_server(app, *, timeout: float = 30.0) -> Iterator[tuple[str, object]]:
    """Run ``app`` on uvicorn in a thread, on a port the OS picks on 127.0.0.1; yield (base URL, server)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def wait_until(condition, *, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition()`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
