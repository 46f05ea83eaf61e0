"""Terminal rendering of a dense recommend run (`DenseResults`): verdict, then one Rich table per rung.

The table rows come from `advisor.report.dense` (the same rows as the markdown and HTML reports), so the terminal
and the report never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advisor.cli._output import safe, stdout_console

if TYPE_CHECKING:
    from advisor.dense.results import DenseResults


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    t = Table(title=title)
    for h in header:
        t.add_column(safe(h), overflow="fold")
    for row in rows:
        t.add_row(*[safe(x) for x in row])
    stdout_console().print(t)


def render_dense_results(res: DenseResults) -> None:
    """Print the verdict, the data warnings, the zero-shot, proxy and other tables, and the run directory."""
    from advisor.report.dense import dense_sections

    con = stdout_console()
    v = res.verdict
    con.print(
        f"[bold red]Verdict ({safe(v.get('route', '-'))}):[/] {safe(v.get('headline', '-'))}", highlight=False
    )
    for line in v.get("reasons", []):
        con.print(f"  - {safe(line)}", highlight=False)
    if (v.get("finetune") or {}).get("summary"):
        con.print(f"[bold]Fine-tune check:[/] {safe(v['finetune']['summary'])}", highlight=False)
    for w in res.dataset.get("warnings", []):
        con.print(
            f"[yellow]warning[/] {safe(w['code'])} x{int(w['count'])}: {safe(w['message'])}", highlight=False
        )
    for title, (header, rows) in dense_sections(res):
        if rows:
            _table(title, header, rows)
    for n in res.notes:
        con.print(f"note: {safe(n)}", highlight=False)
    if v.get("next_command"):
        con.print(f"Next: {safe(v['next_command'])}", highlight=False)
    if res.run_dir:
        con.print(
            f"Run directory: [bold]{safe(res.run_dir)}[/] (report.html, report.md, results.json, results.csv)"
        )
