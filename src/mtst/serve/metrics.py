"""Prometheus metrics of one app (its own registry): requests, latency, batch sizes, batch tokens, queue depth."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServeMetrics:
    """The counters and histograms the app and its batcher update; ``render`` writes the Prometheus text."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mtst_requests", "HTTP requests by route and status code.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "mtst_request_duration_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "mtst_batch_requests", "Requests merged into one model batch.", buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_size = Histogram("mtst_batch_size", "Texts in one model batch.", buckets=SIZE_BUCKETS, registry=r)
        self.batch_tokens = Histogram(
            "mtst_batch_tokens",
            "Tokens (after truncation) of one model batch.",
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("mtst_queue_depth", "Requests waiting for the model.", registry=r)
        self.ready = Gauge("mtst_ready", "1 once the model is loaded, else 0.", registry=r)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def observe_batch(self, requests: int, texts: int, tokens: int) -> None:
        """Called by the batcher's worker thread for each batch it runs."""
        self.batch_requests.observe(requests)
        self.batch_size.observe(texts)
        self.batch_tokens.observe(tokens)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
