"""Freezing policies for the shared backbone and heads: what trains (``apply_freeze``) and the backbone's parts.

The backbone is split into three parts: the embeddings, the transformer layers (bottom to top), and
everything else (the pooler, a final norm). "Everything else" sits with the top layer: it trains when
the last layer trains and gets the top layer's learning rate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)

FREEZE_POLICIES = ("none", "backbone", "all", "embeddings", "all_but_last")
_ACCEPTED_FORMS = (
    "'none', 'backbone', 'all', 'embeddings', 'all_but_last:N' or {'all_but_last': N} "
    "(N an integer >= 0: the number of top transformer layers left trainable), or null (= 'none')"
)


def _freeze_error(value: Any, reason: str = "") -> ValueError:
    reason = f" {reason}" if reason else ""
    return ValueError(
        f"train.freeze: {value!r} is not valid.{reason} Valid policies are: {', '.join(FREEZE_POLICIES)}. "
        f"Accepted forms: {_ACCEPTED_FORMS}."
    )


def _parse_layers(value: Any, raw: Any) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _freeze_error(raw, f"N must be an integer, got {value!r}.") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _freeze_error(raw, f"N must be an integer, got {value!r}.")
    if value < 0:
        raise _freeze_error(raw, f"N must be >= 0, got {value}.")
    return value


def parse_freeze(value: Any) -> tuple[str, int | None]:
    """Normalise a freeze setting to ``(policy, N)``; N is set only for ``all_but_last``.

    Accepts a policy name, ``"all_but_last:N"``, ``{"all_but_last": N}``, ``None`` (= ``"none"``), or an
    already parsed ``(policy, N)`` pair.
    """
    if value is None:
        return "none", None
    if isinstance(value, tuple) and len(value) == 2 and value[0] in FREEZE_POLICIES:
        policy, n = value
        if policy == "all_but_last":
            return policy, _parse_layers(n, value)
        if n is not None:
            raise _freeze_error(value, f"Only all_but_last takes a layer count, not {policy!r}.")
        return policy, None
    if isinstance(value, Mapping):
        if list(value) != ["all_but_last"]:
            raise _freeze_error(dict(value), "A mapping must have the single key 'all_but_last'.")
        return "all_but_last", _parse_layers(value["all_but_last"], dict(value))
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("all_but_last"):
            rest = text[len("all_but_last") :].strip()
            if not rest.startswith(":"):
                raise _freeze_error(
                    value, "all_but_last needs the number of trainable top layers, e.g. 'all_but_last:2'."
                )
            return "all_but_last", _parse_layers(rest[1:], value)
        if text in FREEZE_POLICIES:
            return text, None
        raise _freeze_error(value)
    raise _freeze_error(value, f"Expected a string, a mapping or null, got {type(value).__name__}.")


def backbone_layers(backbone: nn.Module) -> list[nn.Module]:
    """The transformer blocks, bottom to top.

    ``encoder.layer`` (BERT, RoBERTa, MiniLM), ``transformer.layer`` (DistilBERT), else the longest ``nn.ModuleList``.
    """
    for outer, inner in (("encoder", "layer"), ("transformer", "layer")):
        layers = getattr(getattr(backbone, outer, None), inner, None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return list(layers)
    longest: nn.ModuleList | None = None
    for module in backbone.modules():
        if isinstance(module, nn.ModuleList) and len(module) > (len(longest) if longest is not None else 0):
            longest = module
    if longest is None:
        raise ValueError(
            f"Cannot find the transformer layers of {type(backbone).__name__}: expected backbone.encoder.layer "
            "(BERT, RoBERTa, MiniLM), backbone.transformer.layer (DistilBERT), or an nn.ModuleList of blocks. "
            "Use freeze 'none', 'backbone' or 'all' and no layerwise_lr_decay with this backbone."
        )
    return list(longest)


def embeddings_module(backbone: nn.Module) -> nn.Module:
    """``backbone.embeddings`` (BERT, RoBERTa, DistilBERT), else ``backbone.get_input_embeddings()``."""
    embeddings = getattr(backbone, "embeddings", None)
    if isinstance(embeddings, nn.Module):
        return embeddings
    get_input_embeddings = getattr(backbone, "get_input_embeddings", None)
    found = get_input_embeddings() if callable(get_input_embeddings) else None
    if not isinstance(found, nn.Module):
        raise ValueError(
            f"Cannot find the embeddings of {type(backbone).__name__}: it has no .embeddings module and "
            "get_input_embeddings() returned nothing."
        )
    return found


@dataclass
class BackboneParts:
    """The backbone's parameters split into embeddings, layers (bottom to top) and the rest (pooler, final norm)."""

    embeddings: list[nn.Parameter]
    layers: list[list[nn.Parameter]]
    top: list[nn.Parameter]
    top_name: str  # "backbone.pooler" when the rest is only the pooler, else "backbone.top"


def backbone_parts(backbone: nn.Module) -> BackboneParts:
    """Split the backbone's parameters into embeddings, layers (bottom to top) and the rest."""
    seen: set[int] = set()

    def take(module: nn.Module) -> list[nn.Parameter]:
        params = [p for p in module.parameters() if id(p) not in seen]  # a tied parameter goes to its first part
        seen.update(id(p) for p in params)
        return params

    embeddings = take(embeddings_module(backbone))
    layers = [take(layer) for layer in backbone_layers(backbone)]
    top = take(backbone)
    pooler = getattr(backbone, "pooler", None)
    only_pooler = isinstance(pooler, nn.Module) and {id(p) for p in top} == {id(p) for p in pooler.parameters()}
    return BackboneParts(embeddings, layers, top, "backbone.pooler" if only_pooler else "backbone.top")


def unique_params(params: Iterator[nn.Parameter]) -> list[nn.Parameter]:
    """The parameters in order, each once (tied weights appear once)."""
    seen: set[int] = set()
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def all_params(model: Any) -> list[nn.Parameter]:
    """Every parameter of a model (encoder and heads), each once."""
    if isinstance(model, nn.Module):
        return unique_params(model.parameters())
    return unique_params(p for part in (model.encoder, model.heads) for p in part.parameters())


def _check_heads(model: Any, frozen_heads: Sequence[str]) -> list[str]:
    names = [frozen_heads] if isinstance(frozen_heads, str) else list(frozen_heads)
    tasks = getattr(model, "tasks", {})
    for name in names:
        if name not in model.heads:
            no_head = " (that task has no head: it trains the encoder directly)" if name in tasks else ""
            raise ValueError(
                f"frozen_heads: unknown head {name!r}{no_head}. This model's heads are: {', '.join(model.heads)}."
            )
    return names


def apply_freeze(model: Any, freeze: Any = "none", *, frozen_heads: Sequence[str] = ()) -> dict[str, int]:
    """Set ``requires_grad`` by a freeze policy (see ``parse_freeze``) and freeze the heads named in ``frozen_heads``.

    ``all_but_last:N`` freezes the embeddings and all but the top N layers; the pooler follows the top layer.
    N = 0 equals ``backbone``; N >= the number of layers leaves every layer trainable (only embeddings frozen).
    Returns parameter counts ``{"trainable": ..., "frozen": ...}``.
    """
    policy, n_top = parse_freeze(freeze)
    head_names = _check_heads(model, frozen_heads)
    backbone = model.encoder.backbone
    parts = backbone_parts(backbone) if policy == "all_but_last" else None  # needs the layers; others do not
    params = all_params(model)

    for p in params:
        p.requires_grad_(True)
    frozen: list[nn.Parameter] = []
    if policy == "all":
        frozen += params
    elif policy == "backbone":
        frozen += list(backbone.parameters())
    elif policy == "embeddings":
        frozen += list(embeddings_module(backbone).parameters())
    elif policy == "all_but_last":
        n_layers = len(parts.layers)
        if n_top > n_layers:
            logger.warning(
                "freeze all_but_last:%d asks for more layers than the backbone's %d; all layers stay trainable.",
                n_top,
                n_layers,
            )
        frozen += parts.embeddings
        for layer in parts.layers[: max(n_layers - n_top, 0)]:
            frozen += layer
        if n_top == 0:
            frozen += parts.top
    for name in head_names:
        frozen += list(model.heads[name].parameters())
    for p in frozen:
        p.requires_grad_(False)

    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"trainable": trainable, "frozen": sum(p.numel() for p in params) - trainable}
