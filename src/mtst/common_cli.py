"""What the ``mtst`` subcommands share: the consoles, option types, error exits, loading an encoder, reading texts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="'default' (embedded all-MiniLM-L6-v2), a model folder, or a hub id."),
]
PoolingOpt = Annotated[str | None, typer.Option(help="Pooling mode: mean, cls or max (default: the model's own).")]
PrecisionOpt = Annotated[
    str | None, typer.Option(help="fp32, bf16, or auto (bf16 where the CPU computes it natively). Default: fp32.")
]
Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config value: key.path=value (repeatable).")
]


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and end the command."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def checked(call, *args, **kwargs):
    """``call(*args, **kwargs)``; a user mistake it raises (``OSError``, ``ValueError``) ends the command, said."""
    try:
        return call(*args, **kwargs)
    except (OSError, ValueError) as e:
        fail(str(e))


def load_encoder(
    model: str,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    precision: str | None = None,
):
    """The encoder ``--model`` names, with the command's overrides; a mistake ends the command, said."""
    from mtst.encoder import SentenceEncoder
    from mtst.precision import check_precision

    try:
        precision = precision and check_precision(precision)  # before the model loads
        encoder = SentenceEncoder.from_pretrained(model, pooling=pooling, normalize=normalize, max_length=max_length)
        with encoder.inference(precision):  # refuses what this backend cannot run (bf16 on an ONNX export)
            encoder.precision = precision
    except (OSError, ValueError) as e:
        fail(str(e))
    return encoder


def collect_texts(texts: list[str] | None, input_file: Path | None) -> list[str]:
    """The texts given as arguments or in ``--input FILE`` (one a line), not both and not none."""
    from mtst.textfiles import read_lines

    if texts and input_file:
        fail("give texts as arguments or with --input FILE, not both.")
    if input_file:
        try:
            return read_lines(input_file)
        except (OSError, ValueError) as e:
            fail(str(e))
    if not texts:
        fail("no texts: pass them as arguments or with --input FILE (one text per line).")
    return list(texts)
