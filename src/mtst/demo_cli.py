"""``mtst demo``: a few built-in sentences through the default model and the heads shipped with mtst."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtst.common_cli import ModelOpt, PrecisionOpt, check_encoder_options, console, err_console, load_encoder
from mtst.tables_cli import print_embeddings, print_metrics, print_pairs, print_predictions

DEMO_SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar.",
    "The stock market fell sharply on Monday after Apple warned of weak iPhone sales.",
    "Shares dropped at the start of the week.",
    "Where is the Eiffel Tower located?",
    "Marie Curie was born in Warsaw and worked in Paris.",
    "I loved this film: the acting was wonderful.",
    "The plot was dull and the ending made no sense.",
]

# Heads on a frozen backbone tag WikiANN-style entities loosely; the demo hides the least confident spans.
DEMO_MIN_ENTITY_SCORE = 0.4


def demo(
    model: ModelOpt = "default",
    plot: Annotated[Path | None, typer.Option(help="Also save the similarity heatmap (PNG) here.")] = None,
    precision: PrecisionOpt = None,
) -> None:
    """Encode a few built-in sentences and show their embeddings and similarities."""
    import time

    precision = check_encoder_options(None, None, precision)
    start = time.perf_counter()
    multitask = load_demo_heads() if model == "default" else None
    encoder = multitask.encoder if multitask is not None else load_encoder(model, precision=precision)
    if multitask is not None:
        multitask.precision = encoder.precision = precision
    console.print(
        f"[bold]mtst demo[/] — backbone: {model} ({encoder.describe()}), pooling={encoder.pooling}, "
        f"normalize={encoder.normalize}, max_length={encoder.max_length}"
    )
    emb = encoder.encode(DEMO_SENTENCES)
    print_embeddings(DEMO_SENTENCES, emb)
    sim = encoder.similarity(emb)
    print_pairs(DEMO_SENTENCES, sim, top=6)
    if plot is not None:
        from mtst.plotting import plot_similarity_heatmap

        console.print(f"Heatmap saved to {plot_similarity_heatmap(DEMO_SENTENCES, sim, plot)}")
    if multitask is not None:
        preds = multitask.predict(DEMO_SENTENCES, min_entity_score=DEMO_MIN_ENTITY_SCORE)
        print_predictions(DEMO_SENTENCES, preds)
        metrics = multitask.extra.get("dev_metrics")
        if metrics:
            print_metrics(metrics, title="Dev metrics of these heads (frozen backbone)")
        console.print(
            f"[dim]{multitask.extra.get('note', '')} Entities scored below {DEMO_MIN_ENTITY_SCORE} are hidden.[/]"
        )
    console.print(f"Done in {time.perf_counter() - start:.1f}s.")


def load_demo_heads():
    """The topic / sentiment / entity heads shipped with mtst for the default backbone, or None if absent."""
    from mtst.model import MultiTaskModel, demo_heads_path

    path = demo_heads_path()
    if not (path / "mtst_config.json").exists():
        err_console.print("[yellow]No demo heads in this install; showing embeddings only.[/]")
        return None
    return MultiTaskModel.load(path)
