"""What the ``mtst`` subcommands share: consoles, option types, exit codes, output levels, loading an encoder, texts.

Exit codes, as click and most command lines use them: 0 success; 1 a failure while running (a file that is
missing or bad, a model that does not load, an output that exists); 2 a usage error, a command line that is
wrong whatever the files say (an unknown option or value, options that contradict each other, no texts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

EXIT_FAILURE = 1  # the command ran and failed
EXIT_USAGE = 2  # the command line is wrong (click's own code for a usage error)

console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="'default' (embedded all-MiniLM-L6-v2), a model folder, or a hub id."),
]
PoolingOpt = Annotated[str | None, typer.Option(help="Pooling mode: mean, cls or max (default: the model's own).")]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        help="Compute precision: fp32, bf16, or auto (bf16 where the CPU/GPU computes it natively, else fp32). "
        "Default: auto ($MTST_PRECISION changes it)."
    ),
]
Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config value: key.path=value (repeatable).")
]


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and end the command with exit code 1 (it failed while running)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=EXIT_FAILURE)


def usage_error(message: str) -> NoReturn:
    """Print ``error: message`` and where help is, and end with exit code 2 (the command line is wrong)."""
    ctx = click_context()
    hint = f"\nTry '{ctx.command_path} --help' for help." if ctx is not None else ""
    err_console.print(f"[bold red]error:[/] {message}{hint}", highlight=False)
    raise typer.Exit(code=EXIT_USAGE)


def click_context():
    """The click context of the running command, or ``None`` outside one (typer 0.2x vendors its own click)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # typer before it vendored click
        from click import get_current_context
    return get_current_context(silent=True)


def checked(call, *args, **kwargs):
    """``call(*args, **kwargs)``; a failure it raises (``OSError``, ``ValueError``) ends the command (exit 1), said."""
    try:
        return call(*args, **kwargs)
    except (OSError, ValueError) as e:
        fail(str(e))


def check_usage(check: Callable[..., object], *args: object) -> None:
    """Run a check of an option's value; a ``ValueError`` from it is a usage error (exit 2)."""
    try:
        check(*args)
    except ValueError as e:
        usage_error(str(e))


def check_encoder_options(pooling: str | None, max_length: int | None, precision: str | None) -> str | None:
    """Refuse a pooling mode, max length or precision that cannot be right (exit 2); the precision, canonical."""
    from mtst.inputs import check_max_length
    from mtst.pooling import check_pooling
    from mtst.precision import check_precision

    if pooling is not None:
        check_usage(check_pooling, pooling)
    check_usage(check_max_length, max_length)
    if precision is None:
        return None
    try:
        return check_precision(precision)
    except ValueError as e:
        usage_error(str(e))


def load_encoder(
    model: str,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    precision: str | None = None,
):
    """The encoder ``--model`` names, with the command's overrides; a bad value exits 2, a failed load 1."""
    from mtst.encoder import SentenceEncoder

    precision = check_encoder_options(pooling, max_length, precision)  # before the model loads
    try:
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
        usage_error("give texts as arguments or with --input FILE, not both.")
    if input_file:
        try:
            return read_lines(input_file)
        except (OSError, ValueError) as e:
            fail(str(e))
    if not texts:
        usage_error("no texts: pass them as arguments or with --input FILE (one text per line).")
    return list(texts)


# ---------------------------------------------------------------------- -v / -q
class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is now (test runners swap it per command)."""

    @property
    def stream(self):  # type: ignore[override]
        import sys

        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the property always reads sys.stderr
        pass


def configure_output(verbose: int, quiet: bool) -> Callable[[], None]:
    """mtst's messages on stderr: warnings (the default), -v info, -vv debug, -q errors only and no progress bars.

    Returns the undo (the app calls it when the command ends, so a test runner's next command starts clean).
    """
    if verbose and quiet:
        usage_error("--verbose and --quiet contradict each other; give one of them.")
    logger = logging.getLogger("mtst")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = logger.level
    if quiet or verbose:  # else the level stays inherited (warnings and up, unless the host's logging says more)
        logger.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose > 1 else logging.INFO)
    logger.addHandler(handler)
    if quiet:
        from mtst.progress import disable_progress_bars

        disable_progress_bars()

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        if quiet:
            from mtst.progress import enable_progress_bars

            enable_progress_bars()

    return undo
