"""`advisor score FILE.npz`: transferability scores of one model's features on a labelled target set."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from advisor.cli._output import Output, OutputFormat, safe, stdout_console
from advisor.cli.options import AdvisorCommand, FormatOpt, SeedOpt

if TYPE_CHECKING:
    from advisor.scores.registry import ScoreResult


def _score_names_epilog() -> str:
    """One line per registered score (name: summary), built only when help is shown (the registry imports numpy)."""
    from advisor.scores.registry import get_scorer, list_scorers

    lines = [safe(f"{n}: {get_scorer(n).summary}") for n in list_scorers()]
    return "Scores (--scores):\n\n" + "\n\n".join(lines)


class _ScoreCommand(AdvisorCommand):
    """`advisor score` whose help epilog lists every registered score, computed lazily."""

    @property
    def epilog(self) -> str:
        return _score_names_epilog()

    @epilog.setter
    def epilog(self, value: str | None) -> None:  # click sets it in __init__; the listing replaces it
        pass


app = typer.Typer()


def _human(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Transferability scores", title_justify="left", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("better", justify="center")
    table.add_column("95% CI", justify="right")
    table.add_column("time (s)", justify="right")
    table.add_column("note")
    for name, r in data.items():
        val = "—" if r["value"] is None else f"{r['value']:.4g}"
        ci = "—" if r["ci"] is None else f"[{r['ci'][0]:.4g}, {r['ci'][1]:.4g}]"
        sec = "—" if r["seconds"] is None else f"{r['seconds']:.3f}"
        table.add_row(
            safe(name), val, "↑" if r["higher_is_better"] else "↓", ci, sec, safe(r["reason"] or "")
        )
    stdout_console().print(table)


def score_row(r: ScoreResult) -> dict[str, Any]:
    """One `ScoreResult` as the JSON row `advisor score --format json` prints (every field but the name)."""
    row = {k: v for k, v in dataclasses.asdict(r).items() if k != "name"}
    return row | {"ci": list(r.ci) if r.ci is not None else None}


@app.command(
    "score",
    cls=_ScoreCommand,
    help="Transferability scores (LogME, LEEP, SFDA, ...) from saved features (.npz).",
)
def score_cmd(
    file: Annotated[
        Path, typer.Argument(help="An .npz with features (N, D), labels (N,), optional logits/probs.")
    ],
    scores: Annotated[
        str, typer.Option("--scores", help="Comma-separated score names (listed below), or 'all'.")
    ] = "all",
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap", min=0, help="Stratified bootstrap replicates for a 95% interval (0: none)."
        ),
    ] = 0,
    seed: SeedOpt = 0,
    device: Annotated[str, typer.Option("--device", help="torch device: cpu, cuda, cuda:1, mps.")] = "cpu",
    fmt: FormatOpt = OutputFormat.human,
) -> None:
    """Compute transferability scores from an .npz of features and labels."""
    from advisor.api import score

    results = score(file, scores=scores, device=device, bootstrap=bootstrap, seed=seed)
    Output(fmt).result({name: score_row(r) for name, r in results.items()}, _human)
