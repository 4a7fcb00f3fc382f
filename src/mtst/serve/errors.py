"""One error shape for every 4xx/5xx answer: ``{"error": "<what, where, how to fix>", "error_type": "<kind>"}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

# error_type of the statuses that Starlette/FastAPI raise themselves
STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation",
    429: "overloaded",
    500: "internal",
    503: "unavailable",
}


class ServeError(Exception):
    """An answer other than 200, raised anywhere in a route or the batcher."""

    def __init__(self, status: int, error_type: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = dict(headers or {})


def error_body(message: str, error_type: str) -> dict[str, str]:
    return {"error": message, "error_type": error_type}


def format_validation_errors(errors: list[Mapping[str, Any]]) -> tuple[int, str, str]:
    """Status, error_type and one message from pydantic/FastAPI errors, each naming its field.

    A body that is not JSON (or not UTF-8) is a 400; anything else a 422.
    """
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        detail = (first.get("ctx") or {}).get("error", first.get("msg", ""))
        return 400, "invalid_json", f"the request body is not valid JSON ({detail}); send a JSON object."
    parts = []
    for e in errors[:5]:
        loc = _location(e.get("loc", ()))
        msg = str(e.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        if e.get("type") == "missing":
            msg = "this field is required"
        elif e.get("type") == "extra_forbidden":
            msg = "unknown field; check its spelling against the API docs at /docs"
        elif not loc and e.get("type") in ("model_attributes_type", "dict_type", "model_type"):
            msg = "the request body must be a JSON object, sent with 'Content-Type: application/json'"
        parts.append(f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg)
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 422, "validation", "; ".join(parts) + more


def _location(loc: Any) -> str:
    """``("body", "inputs", 2)`` -> ``inputs[2]``; pydantic's union-member tags are left out."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool")):
            continue  # "list[str]", "str": which member of `str | list[str]` pydantic tried
        else:
            out += f".{part}" if out else str(part)
    return out


def install_handlers(app: Any) -> None:
    """Map ServeError, HTTP errors, validation errors and anything unexpected to the one JSON shape."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(ServeError)
    async def _serve_error(request, exc: ServeError):
        return JSONResponse(error_body(exc.message, exc.error_type), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if status == 404:
            detail = f"no route {request.method} {request.url.path}; the routes are listed at /docs."
        elif status == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs for the methods it takes."
        elif status == 400 and "parsing the body" in detail:
            detail = "the request body could not be parsed: send a JSON object encoded as UTF-8."
        error_type = STATUS_TYPES.get(status, "client_error" if status < 500 else "internal")
        return JSONResponse(error_body(detail, error_type), status_code=status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        status, error_type, message = format_validation_errors(list(exc.errors()))
        return JSONResponse(error_body(message, error_type), status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "internal"), status_code=500)
