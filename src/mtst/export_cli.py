"""``mtst export``: parse the options, call ``mtst.export.export_model``, print what the self-check measured."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def export_cmd(
    model: Annotated[
        str, typer.Argument(help="An mtst model folder, an encoder folder, 'default', or a hub id.", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the export into.")],
    quantize: Annotated[str, typer.Option(help="none (fp32) or int8 (dynamic quantization).")] = "none",
    keep_heads_fp32: Annotated[
        bool, typer.Option("--keep-heads-fp32", help="With --quantize int8: leave the task heads in fp32.")
    ] = False,
    keep_fp32: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-fp32",
            metavar="PATTERN",
            help="With --quantize int8: leave the weights of modules matching PATTERN in fp32 (repeatable; "
            "fnmatch on torch module names, e.g. '*.layer.5.output.dense').",
        ),
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="Sentences for the self-check, one a line (default: mtst's sample set).")
    ] = None,
    check_data: Annotated[
        Path | None,
        typer.Option(
            help="A task file (the training config): judge each head it names on up to 200 of its own dev "
            "examples instead of on the check's sentences."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Keep the files even if the self-check fails.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per batch in the self-check.")] = 32,
) -> None:
    """Export a whole model (backbone, pooling, every head) to one ONNX graph, fp32 or int8, and check it."""
    from mtst.export import QUANTIZE, export_model

    if quantize not in QUANTIZE or ((keep_heads_fp32 or keep_fp32) and quantize != "int8"):  # command line: exit 2
        err_console.print(
            f"[bold red]error:[/] --quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}."
            if quantize not in QUANTIZE
            else "[bold red]error:[/] --keep-heads-fp32 and --keep-fp32 go with --quantize int8 only.",
            highlight=False,
        )
        raise typer.Exit(code=2)
    try:
        report = export_model(
            model,
            output,
            quantize=quantize,
            keep_heads_fp32=keep_heads_fp32,
            keep_fp32=keep_fp32 or (),
            calibration=calibration,
            check_data=check_data,
            force=force,
            overwrite=overwrite,
            batch_size=batch_size,
        )
    except (OSError, ValueError, ImportError) as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False)
        raise typer.Exit(code=1) from None  # it failed while running (2 is for a wrong command line)
    check = report.check
    table = Table(title=f"Self-check on {check.texts} sentences ({report.quantize} graph vs torch fp32)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for line in check.lines():
        name, _, value = line.rpartition(": ")
        table.add_row(name, value)
    console.print(table)
    verdict = "[green]passed[/]" if check.passed else f"[red]FAILED, kept with --force[/]: {'; '.join(check.failures)}"
    console.print(
        f"Wrote {report.kind} export to {report.folder} ({report.graph_mb:.1f} MB graph, {report.exporter} "
        f"exporter, {report.seconds:.0f} s); self-check {verdict}",
        highlight=False,
    )
