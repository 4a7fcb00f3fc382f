"""The ASGI app: OpenAI- and TEI-shaped routes over a micro-batched backend, Prometheus metrics and a web page."""

from __future__ import annotations

import base64
import hmac
import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from mtst.serve.backend import Backend, no_tasks_message
from mtst.serve.batcher import EMBED, PREDICT, Batcher, BatchLimits, Result
from mtst.serve.errors import ServeError, install_handlers
from mtst.serve.metrics import ServeMetrics
from mtst.serve.middleware import BodyLimit, RequestMetrics
from mtst.serve.openapi import install_openapi
from mtst.serve.schemas import (
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbedRequest,
    Health,
    PredictRequest,
    PredictResponse,
    SimilarityRequest,
    error_responses,
)
from mtst.version import __version__

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
TRUNCATED_HEADER = "X-Truncated-Inputs"  # indices of the inputs cut to max_length, comma-separated
OPEN_ROUTES = ("/", "/static/*", "/health", "/docs", "/redoc", "/openapi.json")  # no API key needed
ROUTES = ("/", "/v1/embeddings", "/embed", "/predict", "/similarity", "/health", "/info", "/metrics")
ROUTES_ALL = (*ROUTES, "/docs", "/redoc", "/openapi.json")


@dataclass(frozen=True)
class ServeSettings:
    """Limits and access of one server; each is a `mtst serve` option."""

    batch: BatchLimits = field(default_factory=BatchLimits)
    max_client_batch: int = 256  # texts in one request; more: 413
    max_body_bytes: int = 2 * 1024 * 1024  # request body; more: 413
    api_key: str | None = None  # when set, every route but OPEN_ROUTES needs "Authorization: Bearer KEY"

    def __post_init__(self) -> None:
        for name in ("max_client_batch", "max_body_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key is empty: give a non-empty key, or none to leave the API open.")

    def limits(self) -> dict[str, Any]:
        return {
            **asdict(self.batch),
            "max_client_batch": self.max_client_batch,
            "max_body_bytes": self.max_body_bytes,
            "api_key_required": self.api_key is not None,
        }


class ServerState:
    """The backend once loaded, its batcher, and why loading failed if it did."""

    def __init__(self, settings: ServeSettings, metrics: ServeMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.backend: Backend | None = None
        self.batcher: Batcher | None = None
        self.load_error: str | None = None

    def start(self, backend: Backend) -> None:
        self.batcher = Batcher(backend, self.settings.batch, on_batch=self.metrics.observe_batch)
        self.metrics.watch_queue(self.batcher.depth)
        self.backend = backend
        self.metrics.ready.set(1)

    def ready(self) -> tuple[Backend, Batcher]:
        if self.backend is None or self.batcher is None:
            raise self.not_ready()
        return self.backend, self.batcher

    def not_ready(self) -> ServeError:
        if self.load_error is not None:
            return ServeError(503, "unavailable", f"the model failed to load: {self.load_error}")
        return ServeError(
            503, "unavailable", "the model is still loading; retry shortly.", headers={"Retry-After": "2"}
        )


def create_app(
    backend: Backend | Callable[[], Backend],
    settings: ServeSettings | None = None,
    *,
    on_load_error: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """The app serving ``backend``, or the backend a loader returns: it then loads in a thread at start-up,
    and /health answers 503 until it is ready. ``on_load_error`` is called if that load fails."""
    settings = settings or ServeSettings()
    metrics = ServeMetrics()
    state = ServerState(settings, metrics)

    def load() -> None:
        try:
            state.start(backend())  # type: ignore[operator]
        except BaseException as e:
            state.load_error = f"{type(e).__name__}: {e}"
            logger.error("could not load the model: %s", state.load_error)
            if on_load_error is not None:
                on_load_error(e)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if isinstance(backend, Backend):
            state.start(backend)
        else:
            threading.Thread(target=load, name="mtst-model-load", daemon=True).start()
        yield
        if state.batcher is not None:  # finish what was accepted, then stop the worker
            await run_in_threadpool(state.batcher.close)

    app = FastAPI(
        title="mtst serve",
        description="Embeddings (OpenAI and TEI shapes), multi-task predictions from one backbone pass, similarity.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.mtst = state
    install_handlers(app)
    install_openapi(app, state)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=ROUTES_ALL)
    auth = [Depends(_key_checker(settings.api_key))] if settings.api_key else []
    errors = error_responses(400, 401, 413, 422, 429, 503) if auth else error_responses(400, 413, 422, 429, 503)

    def client_texts(inputs: str | list[str], field_name: str) -> list[str]:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if len(texts) > settings.max_client_batch:
            raise ServeError(
                413,
                "payload_too_large",
                f"{field_name} has {len(texts)} texts, more than the limit of {settings.max_client_batch} per "
                "request; split them over several requests.",
            )
        return texts

    @app.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=errors, dependencies=auth)
    async def openai_embeddings(req: EmbeddingsRequest) -> Response:
        """OpenAI's embeddings API: the vectors `SentenceEncoder.encode` gives, as floats or base64 float32."""
        backend, batcher = state.ready()
        texts = client_texts(req.input, "input")
        if req.dimensions is not None and req.dimensions != backend.dim:
            raise ServeError(
                422, "validation", f"dimensions: this model gives {backend.dim} dimensions, not {req.dimensions}."
            )
        res = await batcher.submit(EMBED, texts, normalize=backend.normalize)
        vectors = np.asarray(res.value, dtype="<f4")  # [n, dim]
        if req.encoding_format == "base64":
            items: list[Any] = [base64.b64encode(v.tobytes()).decode("ascii") for v in vectors]
        else:
            items = vectors.tolist()
        body = {
            "object": "list",
            "data": [{"object": "embedding", "embedding": e, "index": i} for i, e in enumerate(items)],
            "model": backend.name,
            "usage": {"prompt_tokens": res.tokens, "total_tokens": res.tokens},
        }
        return _json(body, res)

    @app.post("/embed", response_model=list[list[float]], responses=errors, dependencies=auth)
    async def embed(req: EmbedRequest) -> Response:
        """TEI's /embed: one vector per input (normalized unless `normalize: false`)."""
        _, batcher = state.ready()
        texts = client_texts(req.inputs, "inputs")
        res = await batcher.submit(EMBED, texts, normalize=req.normalize, truncate=req.truncate)
        return _json(np.asarray(res.value, dtype=np.float32).tolist(), res)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={**errors, **error_responses(404)},
        dependencies=auth,
    )
    async def predict(req: PredictRequest) -> Response:
        """Every requested task's prediction for each text, from one backbone pass per batch."""
        backend, batcher = state.ready()
        if not backend.tasks:
            raise ServeError(404, "no_tasks", no_tasks_message(backend.name))
        texts = client_texts(req.inputs, "inputs")
        if req.tasks is not None:
            _check_tasks(req.tasks, backend)
        res = await batcher.submit(PREDICT, texts, tasks=req.tasks, truncate=req.truncate)
        preds = res.value
        if req.min_entity_score > 0:
            floor = req.min_entity_score
            token_tasks = {n for n, t in backend.tasks.items() if t["type"] == "token_classification"}
            preds = [
                {k: [e for e in v if e["score"] >= floor] if k in token_tasks else v for k, v in p.items()}
                for p in preds
            ]
        body = {
            "model": backend.name,
            "predictions": preds,
            "truncated": res.truncated,
            "usage": {"prompt_tokens": res.tokens, "total_tokens": res.tokens},
        }
        return _json(body, res)

    @app.post("/similarity", response_model=list[float], responses=errors, dependencies=auth)
    async def similarity(req: SimilarityRequest) -> Response:
        """Cosine similarity of `source` to each of `targets`."""
        _, batcher = state.ready()
        texts = client_texts([req.source, *req.targets], "source + targets")
        res = await batcher.submit(EMBED, texts, normalize=True, truncate=req.truncate)
        emb = np.asarray(res.value, dtype=np.float32)  # [1 + targets, dim], unit length
        return _json((emb[1:] @ emb[0]).astype(float).tolist(), res)

    @app.get("/health", response_model=Health, responses=error_responses(503))
    async def health() -> Response:
        """200 once the model is loaded; 503 while it loads (or if it failed to)."""
        state.ready()
        return JSONResponse({"status": "ok"})

    @app.get("/info", responses=errors, dependencies=auth)
    async def info() -> dict[str, Any]:
        """The model, backend, tasks and their labels, max_length and this server's limits."""
        backend, _ = state.ready()
        return {**backend.info(), "version": _version(), "limits": settings.limits()}

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses=error_responses(401) if auth else None,
        dependencies=auth,
    )
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests, latency, batch sizes and tokens, queue depth."""
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _check_tasks(tasks: list[str], backend: Backend) -> None:
    if not tasks:
        raise ServeError(422, "validation", "tasks is an empty list; leave it out to get every task.")
    for i, name in enumerate(tasks):
        if not isinstance(name, str) or name not in backend.tasks:
            raise ServeError(
                422,
                "validation",
                f"tasks[{i}]: unknown task {name!r}; this model's tasks are: {', '.join(backend.tasks)}.",
            )


def _json(body: Any, res: Result) -> JSONResponse:
    cut = [str(i) for i, t in enumerate(res.truncated) if t]
    return JSONResponse(body, headers={TRUNCATED_HEADER: ",".join(cut)} if cut else None)


def _key_checker(api_key: str) -> Callable:
    bearer = HTTPBearer(auto_error=False, description="The key given to `mtst serve --api-key`.")
    expected = api_key.encode()

    async def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):  # constant time
            raise ServeError(
                401,
                "unauthorized",
                "missing or wrong API key: send the header 'Authorization: Bearer <key given to --api-key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def _version() -> str:
    return __version__
