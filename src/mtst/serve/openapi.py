"""The OpenAPI spec of the served model: FastAPI's spec plus what depends on the model and the limits
(task names, the embedding size, texts per request), so clients and schema checkers see the real contract."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

LIST_FIELDS = {"EmbeddingsRequest": "input", "EmbedRequest": "inputs", "PredictRequest": "inputs"}


def install_openapi(app: FastAPI, state: Any) -> None:
    """Serve FastAPI's spec with the model's constraints filled in once it is loaded (cached from then on)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        describe_limits(spec, state.settings.max_client_batch)
        if state.backend is not None:
            describe_model(spec, state.backend)
            app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _branches(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return prop.get("anyOf", [prop])


def describe_limits(spec: dict[str, Any], max_client_batch: int) -> None:
    """Lists of texts take 1 to ``max_client_batch`` items (``targets``: one fewer, the source counts)."""
    schemas = spec.get("components", {}).get("schemas", {})
    for model, field in LIST_FIELDS.items():
        for branch in _branches(schemas.get(model, {}).get("properties", {}).get(field, {})):
            if branch.get("type") == "array":
                branch.update(minItems=1, maxItems=max_client_batch)
    for branch in _branches(schemas.get("PredictRequest", {}).get("properties", {}).get("tasks", {})):
        if branch.get("type") == "array":
            branch["minItems"] = 1
    targets = schemas.get("SimilarityRequest", {}).get("properties", {}).get("targets")
    if targets is not None:
        targets["maxItems"] = max(1, max_client_batch - 1)


def describe_model(spec: dict[str, Any], backend: Any) -> None:
    """Task names as an enum of ``tasks`` items; ``dimensions`` can only be the model's size."""
    schemas = spec.get("components", {}).get("schemas", {})
    tasks = schemas.get("PredictRequest", {}).get("properties", {}).get("tasks", {})
    for branch in _branches(tasks):
        if branch.get("type") == "array" and backend.tasks:
            branch["items"] = {"type": "string", "enum": list(backend.tasks)}
    dims = schemas.get("EmbeddingsRequest", {}).get("properties", {}).get("dimensions", {})
    for branch in _branches(dims):
        if branch.get("type") == "integer":
            branch["enum"] = [backend.dim]
