"""Request and response bodies: OpenAI's for /v1/embeddings, TEI's for /embed, mtst's own for /predict."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

JSON_TYPES = {"int": "a number", "float": "a number", "bool": "a boolean", "dict": "an object", "list": "an array"}


def _json_type(value: Any) -> str:
    return "null" if value is None else JSON_TYPES.get(type(value).__name__, type(value).__name__)


def check_text(value: str, where: str) -> str:
    """A string that UTF-8 can encode (JSON's ``\\ud800`` escapes can make one that cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{where} holds an unpaired UTF-16 surrogate ({value[e.start]!r} at character {e.start}): "
            "send valid Unicode text"
        ) from None
    return value


def check_texts(value: Any, field: str) -> Any:
    """A string or a non-empty list of strings; otherwise a message that names the field and the bad item."""
    if isinstance(value, str):
        return check_text(value, field)
    if not isinstance(value, list):
        raise ValueError(f"{field} must be a string or a list of strings, not {_json_type(value)}")
    if not value:
        raise ValueError(f"{field} is an empty list: send at least one text")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            hint = " (token-id input is not supported: send text)" if isinstance(item, int | list) else ""
            raise ValueError(f"{field}[{i}] is {_json_type(item)}, not a string{hint}")
        check_text(item, f"{field}[{i}]")
    return value


class Strict(BaseModel):
    """No type coercion ("1" is not a number, 1 is not a boolean) and no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request. Unknown fields are ignored, as OpenAI clients send some."""

    model_config = ConfigDict(strict=True, extra="ignore")

    input: str | list[str] = Field(description="A text or a list of texts.")
    model: str | None = Field(None, description="Any name: this server serves one model, named in the response.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: lists of numbers; base64: little-endian float32 bytes, base64-encoded."
    )
    dimensions: int | None = Field(
        None, strict=False, description="If given, must equal the model's dimension (see /info)."
    )
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        return check_texts(v, "input")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str
    index: int


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class EmbedRequest(Strict):
    """TEI's /embed request."""

    inputs: str | list[str] = Field(description="A text or a list of texts.")
    normalize: bool = Field(True, description="Scale each vector to length 1.")
    truncate: bool = Field(True, description="Cut texts past max_length tokens (false: answer 413 instead).")

    @field_validator("inputs", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        return check_texts(v, "inputs")


class PredictRequest(Strict):
    """Every requested task's prediction for each text."""

    inputs: str | list[str] = Field(description="A text or a list of texts.")
    tasks: list[str] | None = Field(None, description="Task names (see /info); all tasks when absent.")
    truncate: bool = Field(True, description="Cut texts past max_length tokens (false: answer 413 instead).")
    min_entity_score: float = Field(0.0, ge=0.0, le=1.0, description="Leave out entities scored below this.")

    @field_validator("inputs", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        return check_texts(v, "inputs")


class PredictResponse(BaseModel):
    model: str
    predictions: list[dict[str, Any]] = Field(
        description="Per text, {task: prediction}: classification {label, score}; regression {score}; "
        "token classification a list of entities {text, label, start, end, score} (character offsets)."
    )
    truncated: list[bool] = Field(description="Per text: whether it was cut to max_length tokens.")
    usage: Usage


class SimilarityRequest(Strict):
    """Cosine similarity of one text to each of several others."""

    source: str = Field(description="The text to compare.")
    targets: list[str] = Field(min_length=1, description="The texts to compare it with.")
    truncate: bool = Field(True, description="Cut texts past max_length tokens (false: answer 413 instead).")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        return check_text(v, "source")

    @field_validator("targets", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError("targets must be a list of strings, not a string")
        return check_texts(v, "targets")


class ErrorBody(BaseModel):
    """The shape of every error answer."""

    error: str
    error_type: str


class Health(BaseModel):
    status: Literal["ok", "loading", "failed"]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {s: {"model": ErrorBody} for s in statuses}
