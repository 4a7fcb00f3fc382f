"""mtst serve: every route and error status through the ASGI test client, plus real uvicorn with the OpenAI client."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import build_tiny_multitask, running_server, wait_until  # noqa: E402

from mtst.serve.app import TRUNCATED_HEADER, ServeSettings, create_app  # noqa: E402
from mtst.serve.backend import Backend, load_backend  # noqa: E402
from mtst.serve.batcher import BatchLimits  # noqa: E402

TEXTS = ["the cat sat on the mat", "a dog in paris", "london is a city", "play music"]
ERROR_KEYS = {"error", "error_type"}


@pytest.fixture(scope="module")
def tiny_mt_dir(tiny_model_dir, tmp_path_factory):
    return build_tiny_multitask(tiny_model_dir, tmp_path_factory.mktemp("serve") / "tiny_mt")


@pytest.fixture(scope="module")
def backend(tiny_mt_dir) -> Backend:
    return load_backend(tiny_mt_dir, device="cpu")


@pytest.fixture
def client(backend):
    with TestClient(create_app(backend)) as c:
        yield c


def assert_error(res, status: int, error_type: str | None = None, match: str | None = None) -> dict:
    assert res.status_code == status, res.text
    body = res.json()
    assert set(body) == ERROR_KEYS and isinstance(body["error"], str) and body["error"], body
    if error_type is not None:
        assert body["error_type"] == error_type, body
    if match is not None:
        assert re.search(match, body["error"]), body["error"]
    return body


class GatedBackend(Backend):
    """The tiny backend whose model calls wait for ``gate``; it records the texts of every call."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.encoder, inner.model, name=inner.name)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[list[str]] = []

    def embed(self, texts, normalize):
        self.calls.append(list(texts))
        self.entered.set()
        self.gate.wait(30)
        return super().embed(texts, normalize)


# ---------------------------------------------------------------------- routes
def test_health_info_and_web_page(client, backend):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["backend"] == "torch" and info["model"] == "tiny_mt" and info["max_length"] == 64
    assert info["tasks"] == [
        {"name": "topic", "type": "classification", "labels": ["a", "b"]},
        {"name": "entities", "type": "token_classification", "labels": ["O", "B-PER", "I-PER"]},
    ]
    assert info["limits"]["max_client_batch"] == 256 and info["limits"]["api_key_required"] is False
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and "/static/app.js" in page.text
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200


def test_embed_equals_encode(client, backend):
    raw = backend.encoder.encode(TEXTS, normalize=False)
    res = client.post("/embed", json={"inputs": TEXTS, "normalize": False})
    assert res.status_code == 200 and TRUNCATED_HEADER not in res.headers
    np.testing.assert_allclose(np.array(res.json()), raw, atol=1e-5)
    unit = np.array(client.post("/embed", json={"inputs": TEXTS}).json())  # TEI normalizes by default
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    single = client.post("/embed", json={"inputs": TEXTS[1], "normalize": False}).json()
    np.testing.assert_allclose(np.array(single), raw[1:2], atol=1e-5)


def test_openai_embeddings_shape_float_and_base64(client, backend):
    expected = backend.encoder.encode(TEXTS)
    body = client.post("/v1/embeddings", json={"input": TEXTS, "model": "anything"}).json()
    assert body["object"] == "list" and body["model"] == "tiny_mt"
    assert [d["index"] for d in body["data"]] == [0, 1, 2, 3] and {d["object"] for d in body["data"]} == {"embedding"}
    np.testing.assert_allclose(np.array([d["embedding"] for d in body["data"]]), expected, atol=1e-5)
    tokens = sum(backend.count_tokens(TEXTS))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    b64 = client.post("/v1/embeddings", json={"input": TEXTS[0], "model": "m", "encoding_format": "base64"}).json()
    vec = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vec, expected[0], atol=1e-5)
    assert_error(
        client.post("/v1/embeddings", json={"input": "x", "model": "m", "dimensions": 7}), 422, "validation", "32"
    )
    assert_error(client.post("/v1/embeddings", json={"input": [[1, 2]], "model": "m"}), 422, "validation", "token-id")
    assert_error(client.post("/v1/embeddings", json={"input": "x", "encoding_format": "hex"}), 422, "validation")


def test_predict_equals_model_predict(client, backend):
    expected = backend.model.predict(TEXTS)
    body = client.post("/predict", json={"inputs": TEXTS}).json()
    assert body["model"] == "tiny_mt" and body["truncated"] == [False] * 4 and body["usage"]["prompt_tokens"] > 0
    assert len(body["predictions"]) == len(TEXTS)
    for got, want, text in zip(body["predictions"], expected, TEXTS, strict=True):
        assert set(got) == {"topic", "entities"}
        assert got["topic"]["label"] == want["topic"]["label"]
        assert got["topic"]["score"] == pytest.approx(want["topic"]["score"], abs=1e-5)
        assert [(e["label"], e["start"], e["end"]) for e in got["entities"]] == [
            (e["label"], e["start"], e["end"]) for e in want["entities"]
        ]
        for e in got["entities"]:
            assert text[e["start"] : e["end"]] == e["text"]
    only = client.post("/predict", json={"inputs": TEXTS[0], "tasks": ["topic"]}).json()
    assert list(only["predictions"][0]) == ["topic"]
    strict = client.post("/predict", json={"inputs": TEXTS, "tasks": ["entities"], "min_entity_score": 1.0}).json()
    assert all(p["entities"] == [] for p in strict["predictions"])


def test_similarity_equals_cosine(client, backend):
    emb = backend.encoder.encode(TEXTS, normalize=True)
    res = client.post("/similarity", json={"source": TEXTS[0], "targets": TEXTS[1:]})
    assert res.status_code == 200
    np.testing.assert_allclose(res.json(), emb[1:] @ emb[0], atol=1e-5)


def test_openapi_schema_and_docs(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/embeddings", "/embed", "/predict", "/similarity", "/health", "/info", "/metrics"} <= set(spec["paths"])
    assert "inputs" in spec["components"]["schemas"]["PredictRequest"]["properties"]
    assert "422" in spec["paths"]["/predict"]["post"]["responses"]
    assert client.get("/docs").status_code == 200


def test_metrics(client):
    client.post("/embed", json={"inputs": TEXTS})
    client.post("/embed", json={"inputs": []})
    text = client.get("/metrics").text
    assert 'mtst_requests_total{route="/embed",status="200"} 1.0' in text
    assert 'mtst_requests_total{route="/embed",status="422"} 1.0' in text
    assert 'mtst_request_duration_seconds_count{route="/embed"} 2.0' in text
    assert "mtst_batch_size_sum 4.0" in text and "mtst_batch_tokens_count 1.0" in text
    assert "mtst_queue_depth 0.0" in text and "mtst_ready 1.0" in text


# ---------------------------------------------------------------------- errors
def test_validation_errors_name_the_field(client):
    cases = [
        ("/embed", {"inputs": []}, "inputs is an empty list"),
        ("/embed", {"inputs": ["a", 3]}, r"inputs\[1\] is a number"),
        ("/embed", {"inputs": "a", "normalize": "yes"}, "normalize"),
        ("/embed", {"input": "a"}, "inputs: this field is required"),
        ("/predict", {"inputs": "a", "tasks": ["topic", "nope"]}, r"tasks\[1\]: unknown task 'nope'.*topic, entities"),
        ("/predict", {"inputs": "a", "tasks": []}, "tasks is an empty list"),
        ("/predict", {"inputs": "a", "min_entity_score": 2}, "min_entity_score"),
        ("/similarity", {"source": "a", "targets": "b"}, "targets must be a list"),
        ("/similarity", {"source": None, "targets": ["b"]}, "source"),
        ("/v1/embeddings", {"model": "m"}, "input: this field is required"),
    ]
    for route, body, match in cases:
        assert_error(client.post(route, json=body), 422, "validation", match)


def test_http_errors_use_the_error_shape(client):
    assert_error(client.get("/nope"), 404, "not_found", "/nope")
    assert_error(client.get("/predict"), 405, "method_not_allowed")
    assert_error(client.post("/embed", content=b"{not json", headers={"content-type": "application/json"}), 400)


def test_size_limits_413(backend):
    settings = ServeSettings(max_client_batch=3, max_body_bytes=2000)
    with TestClient(create_app(backend, settings)) as c:
        assert_error(c.post("/embed", json={"inputs": ["a"] * 4}), 413, "payload_too_large", "limit of 3")
        assert_error(c.post("/similarity", json={"source": "a", "targets": ["b"] * 3}), 413, "payload_too_large")
        assert_error(c.post("/embed", json={"inputs": "x" * 3000}), 413, "payload_too_large", "2000 bytes")
        assert c.post("/embed", json={"inputs": ["a"] * 3}).status_code == 200


def test_truncation_is_reported_or_refused(client, backend):
    long = "the cat sat on the mat " * 30  # ~180 tokens > max_length 64
    res = client.post("/embed", json={"inputs": [TEXTS[0], long]})
    assert res.status_code == 200 and res.headers[TRUNCATED_HEADER] == "1"
    body = client.post("/predict", json={"inputs": [long, TEXTS[0]]}).json()
    assert body["truncated"] == [True, False]
    assert body["usage"]["prompt_tokens"] == 64 + backend.count_tokens([TEXTS[0]])[0]
    for route, payload in [
        ("/embed", {"inputs": [TEXTS[0], long], "truncate": False}),
        ("/predict", {"inputs": long, "truncate": False}),
        ("/similarity", {"source": "a", "targets": [long], "truncate": False}),
    ]:
        assert_error(client.post(route, json=payload), 413, "too_long", r"input 1 has \d+ tokens|input 0 has")


def test_encoder_without_tasks(tiny_model_dir):
    with TestClient(create_app(load_backend(tiny_model_dir, device="cpu"))) as c:
        assert c.get("/info").json()["tasks"] == []
        assert_error(c.post("/predict", json={"inputs": "a"}), 404, "no_tasks", "without task heads")
        assert c.post("/embed", json={"inputs": "a"}).status_code == 200


def test_api_key(backend, monkeypatch):
    import mtst.serve.app as app_module

    compared = []
    real = app_module.hmac.compare_digest
    monkeypatch.setattr(app_module.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    with TestClient(create_app(backend, ServeSettings(api_key="s3cret"))) as c:
        assert_error(c.post("/embed", json={"inputs": "a"}), 401, "unauthorized", "Bearer")
        res = c.post("/embed", json={"inputs": "a"}, headers={"Authorization": "Bearer wrong"})
        assert_error(res, 401) and res.headers["www-authenticate"] == "Bearer"
        assert_error(c.get("/info", headers={"Authorization": "Basic s3cret"}), 401)
        assert_error(c.get("/metrics"), 401)
        ok = {"Authorization": "Bearer s3cret"}
        assert c.post("/embed", json={"inputs": "a"}, headers=ok).status_code == 200
        assert c.get("/info", headers=ok).json()["limits"]["api_key_required"] is True
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200  # open
    assert len(compared) >= 4


def test_health_503_while_loading_then_200(backend):
    release = threading.Event()

    def slow_loader():
        release.wait(30)
        return backend

    with TestClient(create_app(slow_loader)) as c:
        assert_error(c.get("/health"), 503, "unavailable", "loading")
        res = c.post("/embed", json={"inputs": "a"})
        assert_error(res, 503, "unavailable") and res.headers["retry-after"] == "2"
        assert "mtst_ready 0.0" in c.get("/metrics").text
        release.set()
        wait_until(lambda: c.get("/health").status_code == 200, what="the model to load")
        assert c.post("/embed", json={"inputs": "a"}).status_code == 200


def test_failed_load_stays_503_with_the_reason():
    seen = []

    def broken_loader():
        raise OSError("no such model folder /nowhere")

    with TestClient(create_app(broken_loader, on_load_error=seen.append)) as c:
        wait_until(lambda: seen, what="the load to fail")
        assert_error(c.get("/health"), 503, "unavailable", "failed to load: OSError: no such model folder /nowhere")


# ---------------------------------------------------------------------- batching and backpressure
def test_queue_full_gives_429_while_health_stays_200(backend):
    gated = GatedBackend(backend)
    settings = ServeSettings(batch=BatchLimits(max_queue=1, max_batch_requests=1))
    results: dict[str, int] = {}
    with TestClient(create_app(gated, settings)) as c:

        def post(name):
            results[name] = c.post("/embed", json={"inputs": name}).status_code

        first = threading.Thread(target=post, args=("first",))
        first.start()
        assert gated.entered.wait(10)  # the worker is inside the model with "first"
        second = threading.Thread(target=post, args=("second",))
        second.start()
        wait_until(lambda: c.app.state.mtst.batcher.depth() == 1, what="second request to queue")
        res = c.post("/embed", json={"inputs": "third"})
        assert_error(res, 429, "overloaded", "queue is full") and res.headers["retry-after"] == "1"
        assert c.get("/health").status_code == 200  # the event loop still answers
        assert "mtst_queue_depth 1.0" in c.get("/metrics").text
        gated.gate.set()
        first.join(10)
        second.join(10)
    assert results == {"first": 200, "second": 200}


def test_concurrent_requests_merge_into_one_batch_and_get_their_own_answers(backend):
    gated = GatedBackend(backend)
    texts = [f"the cat number {i}" for i in range(6)]
    expected = backend.encoder.encode(texts, normalize=False)
    answers: dict[int, np.ndarray] = {}
    with TestClient(create_app(gated, ServeSettings(batch=BatchLimits(max_wait_ms=0)))) as c:

        def post(i):
            answers[i] = np.array(c.post("/embed", json={"inputs": texts[i], "normalize": False}).json()[0])

        blocker = threading.Thread(target=post, args=(0,))
        blocker.start()
        assert gated.entered.wait(10)
        others = [threading.Thread(target=post, args=(i,)) for i in range(1, 6)]
        for t in others:
            t.start()
        wait_until(lambda: c.app.state.mtst.batcher.depth() == 5, what="five queued requests")
        gated.gate.set()
        for t in [blocker, *others]:
            t.join(10)
    assert [len(call) for call in gated.calls] == [1, 5]  # the five waiting requests ran as one model call
    assert sorted(gated.calls[1]) == texts[1:]
    for i in range(6):  # every answer belongs to its own request
        np.testing.assert_allclose(answers[i], expected[i], atol=1e-5)


def test_token_budget_splits_batches(backend):
    gated = GatedBackend(backend)
    n_tokens = backend.count_tokens(["the cat number 1"])[0]
    limits = BatchLimits(max_wait_ms=0, max_batch_tokens=2 * n_tokens)  # two of these texts per batch
    with TestClient(create_app(gated, ServeSettings(batch=limits))) as c:
        threads = [threading.Thread(target=c.post, args=("/embed",), kwargs={"json": {"inputs": "the cat number 1"}})]
        threads[0].start()
        assert gated.entered.wait(10)
        threads += [
            threading.Thread(target=c.post, args=("/embed",), kwargs={"json": {"inputs": f"the cat number {i}"}})
            for i in range(2, 7)
        ]
        for t in threads[1:]:
            t.start()
        wait_until(lambda: c.app.state.mtst.batcher.depth() == 5, what="five queued requests")
        gated.gate.set()
        for t in threads:
            t.join(10)
    assert [len(call) for call in gated.calls] == [1, 2, 2, 1]


# ---------------------------------------------------------------------- real uvicorn and a real client
def test_openai_client_against_real_uvicorn(backend):
    openai = pytest.importorskip("openai")
    app = create_app(backend, ServeSettings(api_key="k"))
    expected = backend.encoder.encode(TEXTS)
    with running_server(app) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        for fmt in ("float", None):  # None: the client asks for base64 and decodes it itself
            kwargs = {"encoding_format": fmt} if fmt else {}
            res = client.embeddings.create(model="tiny_mt", input=TEXTS, **kwargs)
            np.testing.assert_allclose(np.array([d.embedding for d in res.data]), expected, atol=1e-5)
            assert res.model == "tiny_mt" and res.usage.prompt_tokens == sum(backend.count_tokens(TEXTS))
        raw = client.embeddings.create(model="tiny_mt", input=TEXTS[2], encoding_format="base64")
        vec = np.frombuffer(base64.b64decode(raw.data[0].embedding), dtype="<f4")
        np.testing.assert_allclose(vec, expected[2], atol=1e-5)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).embeddings.create(model="m", input="a")


def test_graceful_shutdown_finishes_accepted_requests(backend):
    import httpx

    gated = GatedBackend(backend)
    statuses: list[int] = []
    with running_server(create_app(gated)) as (url, server):

        def post(i):
            statuses.append(httpx.post(f"{url}/embed", json={"inputs": f"text {i}"}, timeout=30).status_code)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        assert gated.entered.wait(10)
        wait_until(lambda: len(server.server_state.tasks) == 4, what="four requests in flight")
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        time.sleep(0.2)
        gated.gate.set()
        for t in threads:
            t.join(30)
    assert statuses == [200, 200, 200, 200]


def test_cli_serve_subprocess_answers_and_stops_on_sigterm(tiny_mt_dir):
    import httpx

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mtst.cli", "serve", "--model", str(tiny_mt_dir), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url, lines = None, []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            found = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        assert url, "".join(lines)
        wait_until(lambda: httpx.get(f"{url}/health").status_code == 200, timeout=60, what="the model to load")
        res = httpx.post(f"{url}/predict", json={"inputs": ["the cat sat"]})
        assert res.status_code == 200 and set(res.json()["predictions"][0]) == {"topic", "entities"}
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught, as a signal-aware program should
        assert proc.wait(30) in (0, -signal.SIGTERM)
        tail = proc.stdout.read()
        assert "Application shutdown complete" in tail and "Finished server process" in tail
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serve_refuses_a_missing_model_at_once(tmp_path):
    from typer.testing import CliRunner

    from mtst.cli import app

    res = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "no such folder" in res.output  # 1: failed while running (2: usage)


@pytest.mark.real_model
def test_default_model_with_openai_client():
    openai = pytest.importorskip("openai")
    from mtst.encoder import SentenceEncoder

    backend = load_backend("default", device="cpu")
    texts = ["Marie Curie was born in Warsaw and worked in Paris.", "Where is the Eiffel Tower located?"]
    expected = SentenceEncoder.from_pretrained("default", device="cpu").encode(texts)
    with running_server(create_app(backend)) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        for fmt in ("float", "base64"):
            data = client.embeddings.create(model="default", input=texts, encoding_format=fmt).data
            got = [
                np.frombuffer(base64.b64decode(d.embedding), "<f4") if fmt == "base64" else d.embedding for d in data
            ]
            np.testing.assert_allclose(np.array(got), expected, atol=1e-5)
        import httpx

        preds = httpx.post(f"{url}/predict", json={"inputs": texts}).json()["predictions"]
    assert set(preds[0]) == {"topic", "sentiment", "entities"}
    assert {"Marie Curie", "Paris"} <= {e["text"] for e in preds[0]["entities"]}
    assert preds[1]["topic"]["label"] == "LOC"


@pytest.mark.real_model
def test_readme_serve_example_runs():
    """README's `mtst serve` block, on a port the OS picks instead of 8080 (it is not a bash block: test_docs
    runs those, and this one needs a free port)."""
    import socket
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## `mtst serve`", 1)[1]
    script = re.search(r"^```sh\n(.*?)^```", section, flags=re.M | re.S).group(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = script.replace("8080", str(port)).replace("mtst serve ", f"mtst serve --port {port} ")
    script = script.replace(".venv/bin/", str(Path(sys.executable).parent) + "/")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started: bash and its server
            proc.wait()
    assert proc.returncode == 0, f"{script}\n--- stdout\n{out[-2000:]}\n--- stderr\n{err[-2000:]}"
    assert '"predictions"' in out and '"entities"' in out and '"object":"list"' in out
