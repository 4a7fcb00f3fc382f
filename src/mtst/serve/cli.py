"""``mtst serve``: parse the options, check them, then run the app on uvicorn (the model loads in the background)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

SERVE_EXTRA_HINT = "mtst serve needs the serve extra: pip install 'mtst[serve]' (fastapi, uvicorn, prometheus-client)."


def _fail(message: str, code: int = 1) -> None:
    """``error: message`` on stderr; exit 1 (failed while running) or 2 (the command line is wrong)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _check_model_name(model: str) -> None:
    """Refuse at once a path that does not exist (a hub id or 'default' is checked by the load itself)."""
    if model == "default":
        return
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            _fail(f"--model {model}: that is a file; give a model folder, 'default' or a hub id.")
        return
    if model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model:
        _fail(
            f"--model {model}: no such folder. Give 'default', an mtst model folder (from `mtst train`), "
            "a sentence-transformers or Hugging Face model folder, or a hub id (owner/name)."
        )


def serve_cmd(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="'default' (all-MiniLM-L6-v2 embeds, the shipped joint model predicts), an mtst model folder, or an "
            "encoder.",
        ),
    ] = "default",
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface (Docker).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8080,
    max_batch_tokens: Annotated[
        int, typer.Option(min=1, help="Tokens (after truncation) merged into one batch.")
    ] = 16384,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="How long a batch waits for more requests.")] = 2.0,
    max_batch_requests: Annotated[int, typer.Option(min=1, help="Requests merged into one batch.")] = 256,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="Run each request alone (same as --max-batch-requests 1).")
    ] = False,
    max_queue: Annotated[int, typer.Option(min=1, help="Requests that may wait; past this: 429.")] = 512,
    max_client_batch: Annotated[int, typer.Option(min=1, help="Texts per request; past this: 413.")] = 256,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Request body size; past this: 413.")] = 2 * 1024 * 1024,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="MTST_API_KEY", help="Require 'Authorization: Bearer KEY' (also from $MTST_API_KEY)."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level: critical, error, warning, info, debug.")
    ] = "info",
) -> None:
    """Serve embeddings (OpenAI and TEI shapes), multi-task predictions and a web page over HTTP."""
    try:
        import uvicorn

        from mtst.serve.app import ServeSettings, create_app
        from mtst.serve.backend import load_backend
        from mtst.serve.batcher import BatchLimits
    except ImportError as e:
        _fail(f"{SERVE_EXTRA_HINT} ({e})")
    _check_model_name(model)
    try:
        settings = ServeSettings(
            batch=BatchLimits(
                max_batch_tokens=max_batch_tokens,
                max_wait_ms=max_wait_ms,
                max_batch_requests=1 if no_batching else max_batch_requests,
                max_queue=max_queue,
            ),
            max_client_batch=max_client_batch,
            max_body_bytes=max_body_bytes,
            api_key=api_key,
        )
    except ValueError as e:
        _fail(str(e), code=2)

    failure: list[BaseException] = []
    server: uvicorn.Server | None = None

    def loader():
        start = time.perf_counter()
        backend = load_backend(model, device=device)
        tasks = ", ".join(backend.tasks) or "none (embeddings and similarity only)"
        typer.echo(
            f"mtst serve: model {model!r} loaded in {time.perf_counter() - start:.1f}s; tasks: {tasks}", err=True
        )
        return backend

    def on_load_error(e: BaseException) -> None:
        failure.append(e)
        if server is not None:
            server.should_exit = True  # stop listening: nothing can be served

    app = create_app(loader, settings, on_load_error=on_load_error)
    auth = "an API key is required (except on /, /health, /docs)" if api_key else "no API key"
    typer.echo(f"mtst serve: loading {model!r}; /health answers 503 until it is ready; {auth}.", err=True)
    # keep-alive longer than clients' own idle expiry (httpx: 5 s), so a client never reuses a connection at the
    # moment the server closes it (uvicorn's default is 5 s too: one ReadError in 3,200 bench requests fits that).
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30, timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    server.run()
    if failure:
        _fail(f"could not load --model {model}: {failure[0]}")
    if not server.started:
        sys.exit(1)
