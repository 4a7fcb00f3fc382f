"""Hostile input on every route of mtst serve: always a 4xx in the documented shape, never a 500, and /health
stays 200. Then schemathesis against the app's own OpenAPI spec."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
hypothesis = pytest.importorskip("hypothesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from serve_helpers import build_tiny_multitask  # noqa: E402

from mtst.serve.app import ServeSettings, create_app  # noqa: E402
from mtst.serve.backend import load_backend  # noqa: E402

POST_ROUTES = {
    "/v1/embeddings": ("input", "model", "encoding_format", "dimensions", "user"),
    "/embed": ("inputs", "normalize", "truncate"),
    "/predict": ("inputs", "tasks", "truncate", "min_entity_score"),
    "/similarity": ("source", "targets", "truncate"),
}
GET_ROUTES = ("/health", "/info", "/metrics", "/", "/openapi.json")
JSON = {"content-type": "application/json"}
BODY_LIMIT = 64 * 1024
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def app(tiny_model_dir, tmp_path_factory):
    model_dir = build_tiny_multitask(tiny_model_dir, tmp_path_factory.mktemp("fuzz") / "tiny_mt")
    return create_app(load_backend(model_dir, device="cpu"), ServeSettings(max_body_bytes=BODY_LIMIT))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def check(res, *, ok_allowed: bool = False) -> None:
    """A 4xx in the error shape (or a 200 where the input may be valid); never a 5xx."""
    assert res.status_code < 500, (res.status_code, res.text[:300])
    if ok_allowed and res.status_code == 200:
        json.loads(res.text)
        return
    assert 400 <= res.status_code < 500, (res.status_code, res.text[:300])
    body = res.json()
    assert set(body) == {"error", "error_type"} and body["error"] and body["error_type"], body


@pytest.fixture(autouse=True)
def stays_healthy(client):
    yield
    assert client.get("/health").status_code == 200


MALFORMED = [
    b"",
    b"{",
    b"}",
    b"{]",
    b'{"inputs": }',
    b'{"inputs": "a",}',
    b"nul",
    b"\x00\x01\x02",
    b'{"inputs": "a"',
    b"[1, 2, 3]",
    b'"just a string"',
    b"12",
    b"null",
    b'{"inputs": NaN, "source": Infinity}',
    b'{"min_entity_score": NaN, "inputs": "a"}',
]
INVALID_UTF8 = [
    b'{"inputs": "\xff\xfe\xfd"}',
    b'{"input": "caf\xc3"}',
    b'{"inputs": "\xc0\xaf"}',  # overlong "/"
    b'{"source": "\xed\xa0\x80", "targets": ["a"]}',  # an encoded surrogate
    b'{"inputs": "\\ud800"}',  # a lone surrogate as a JSON escape
    b'{"input": ["ok", "\\udfff x"]}',
    b'{"source": "a", "targets": ["\\ud83d"]}',
]


@pytest.mark.parametrize("route", list(POST_ROUTES))
def test_malformed_json_and_invalid_utf8(client, route):
    for body in MALFORMED + INVALID_UTF8:
        for headers in (
            JSON,
            {},
            {"content-type": "text/plain"},
            {"content-type": "application/json; charset=latin-1"},
        ):
            check(client.post(route, content=body, headers=headers))
    bom = b'\xef\xbb\xbf{"inputs": "a", "input": "a", "source": "a", "targets": ["b"]}'  # UTF-8 with a BOM
    check(client.post(route, content=bom, headers=JSON), ok_allowed=True)


@pytest.mark.parametrize("route", list(POST_ROUTES))
def test_deep_nesting(client, route):
    field = POST_ROUTES[route][0]
    for depth in (50, 1000, 30000):
        check(client.post(route, content=b"[" * depth + b"]" * depth, headers=JSON))
        nested = b'{"%s": ' % field.encode() + b"[" * depth + b"]" * depth + b"}"
        check(client.post(route, content=nested, headers=JSON))
        objects = b'{"a": ' * depth + b"1" + b"}" * depth
        check(client.post(route, content=objects, headers=JSON))


@pytest.mark.parametrize("route", list(POST_ROUTES))
def test_huge_bodies(client, route):
    big = json.dumps({POST_ROUTES[route][0]: ["word " * 50] * 400}).encode()  # ~100 kB > 64 kB
    res = client.post(route, content=big, headers=JSON)
    check(res)
    assert res.status_code == 413 and res.json()["error_type"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        for _ in range(100):
            yield b" " * 1024

    res = client.post(route, content=chunks(), headers=JSON)
    check(res)
    assert res.status_code == 413


@pytest.mark.parametrize("route", list(POST_ROUTES))
def test_very_long_texts_are_truncated_or_refused(client, route):
    text = "the cat sat on the mat " * 2500  # ~57 kB, ~15000 tokens, under the body limit
    field = POST_ROUTES[route][0]
    body = {"source": text, "targets": ["a"]} if route == "/similarity" else {field: [text]}
    if route == "/v1/embeddings":
        body["model"] = "m"
    res = client.post(route, json=body)
    assert res.status_code == 200, res.text[:300]
    if route != "/v1/embeddings":
        check(client.post(route, json={**body, "truncate": False}))


@pytest.mark.parametrize("route", list(POST_ROUTES))
def test_wrong_types_in_every_field(client, route):
    @FUZZ
    @given(field=st.sampled_from(POST_ROUTES[route]), value=json_values, base=st.booleans())
    def probe(field, value, base):
        body = {"inputs": "a", "input": "a", "source": "a", "targets": ["b"], "model": "m"} if base else {}
        body = {k: v for k, v in body.items() if k in POST_ROUTES[route]}
        body[field] = value
        check(client.post(route, json=body), ok_allowed=True)

    probe()


@pytest.mark.parametrize("route", list(POST_ROUTES))
def test_arbitrary_bodies(client, route):
    @FUZZ
    @given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
    def probe(body):
        check(client.post(route, content=body, headers=JSON), ok_allowed=True)

    probe()


@FUZZ
@given(text=st.text(max_size=200))
def test_any_unicode_text_embeds_and_predicts(client, text):
    for route, body in (("/embed", {"inputs": [text]}), ("/predict", {"inputs": text})):
        res = client.post(route, json=body)
        assert res.status_code in (200, 422), res.text[:300]  # 422: text with a lone surrogate
        check(res, ok_allowed=True)


def test_wrong_methods_and_unknown_paths(client):
    for route in POST_ROUTES:
        check(client.get(route))
        check(client.put(route, json={}))
    for route in GET_ROUTES:
        check(client.post(route, json={}))
        check(client.delete(route))
    for path in ("/nope", "/v1", "/v1/embeddings/x", "/static/../pyproject.toml", "/static/nope.js", "/%ff"):
        check(client.get(path))


# ---------------------------------------------------------------------- schemathesis: the app's own OpenAPI spec
# schemathesis.pytest.from_fixture reads a private pytest attribute that pytest 9.2 removed, so each operation's
# strategy is run with hypothesis directly: the same cases and the same checks as @schema.parametrize().
# GET routes take no parameters, so they have no negative cases.
OPERATIONS = [("POST", p, mode) for p in POST_ROUTES for mode in ("positive", "negative")]
OPERATIONS += [("GET", p, "positive") for p in ("/health", "/info", "/metrics")]
# 413 is the documented answer to a schema-valid text longer than max_length with `truncate: false`, and to more
# texts than maxItems (the --max-client-batch limit).
SCHEMATHESIS_CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "413"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "404", "405", "413", "415", "422"]
"""


@pytest.fixture(scope="module")
def api_schema(app, client):  # `client` runs the app's lifespan, so the model is ready
    schemathesis = pytest.importorskip("schemathesis")
    config = schemathesis.Config.from_str(SCHEMATHESIS_CONFIG)
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS)
def test_openapi_spec_conformance(api_schema, method, path, mode):
    from schemathesis import GenerationMode

    operation = api_schema[path][method]

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode(mode)))
    def run(case):
        case.call_and_validate()

    run()


def test_openapi_spec_names_the_models_tasks_and_limits(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    tasks = next(b for b in schemas["PredictRequest"]["properties"]["tasks"]["anyOf"] if b.get("type") == "array")
    assert tasks["items"]["enum"] == ["topic", "entities"]
    inputs = next(b for b in schemas["EmbedRequest"]["properties"]["inputs"]["anyOf"] if b.get("type") == "array")
    assert inputs["maxItems"] == 256
