"""The ``covalent-braket jobs`` table: a dispatch's jobs (the rows of
:mod:`~covalent_braket_plugin.dispatch_jobs`) as aligned text, with their estimated total."""

from __future__ import annotations

from typing import Any

from . import progress


def render(rows: list[dict[str, Any]]) -> str:
    """The ``jobs`` table as text.

    Args:
        rows: the rows of :func:`~covalent_braket_plugin.dispatch_jobs.jobs_rows`.

    Returns:
        A header and a line per row, in aligned columns, the estimated total of the priced
        jobs (``*`` marks an estimate that lacks a price), and why an estimate is missing or
        partial. The console links are in ``--json``.
    """
    header = [
        "NODE",
        "ELECTRONS",
        "JOB",
        "STATE",
        "QUEUE",
        "STARTED",
        "ENDED",
        "BILLED",
        "QUANTUM TASKS",
        "EST. USD",
    ]
    lines = [_cells(row) for row in rows]
    if any("dispatch_id" in row for row in rows):  # jobs of several dispatches (--orphans)
        header = ["DISPATCH", *header]
        lines = [
            [row.get("dispatch_id") or "-", *cells] for row, cells in zip(rows, lines, strict=True)
        ]
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=False)
    ]
    out = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=False))
        for cells in [header, *lines]
    ]
    priced = [row["estimated_cost_usd"] for row in rows if row["estimated_cost_usd"] is not None]
    if priced:
        partial = any(row["cost_complete"] is False for row in rows)
        out.append(
            f"\nEstimated total: USD {sum(priced):.4f} for {len(priced)} of {len(rows)} jobs "
            "(instances and quantum tasks"
            + ("; * an estimate that lacks a price)" if partial else ")")
        )
    out += _why_no_estimate(rows)
    return "\n".join(line.rstrip() for line in out)


def _cells(row: dict[str, Any]) -> list[Any]:
    """A row's cells, in the header's order."""
    tasks = "; ".join(
        f"{device} {figures['tasks']} task{'s' * (figures['tasks'] != 1)} {figures['shots']} shots"
        for device, figures in row["quantum_tasks"].items()
    )
    cost = row["estimated_cost_usd"]
    return [
        f"{row['node']} {row['node_name']}" if row.get("node_name") else row["node"],
        row.get("electrons", 1),
        row["job_name"],
        row["state"],
        row["queue_position"] or "-",
        _short_time(row["started"]),
        _short_time(row["ended"]),
        progress.duration(row["billable_ms"] / 1000) if row["billable_ms"] else "-",
        tasks or ("-" if row["usage_recorded"] else ""),
        _money(cost) + ("" if row["cost_complete"] else "*") if cost is not None else "-",
    ]


def _why_no_estimate(rows: list[dict[str, Any]]) -> list[str]:
    """A line for each reason an estimate is missing or partial, with the jobs it holds for."""
    reasons: dict[str, list[str]] = {}
    for row in rows:
        if row["estimated_cost_usd"] is None or row["cost_complete"] is False:
            for note in row.get("cost_notes") or []:
                reasons.setdefault(note, []).append(str(row["job_name"]))
    if not reasons:
        return []
    lines = ["", "Estimates missing or partial:"]
    for note, names in reasons.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"  {shown}: {note}")
    return lines


def _money(amount: float) -> str:
    return "<0.0001" if 0 < amount < 0.00005 else f"{amount:.4f}"


def _short_time(moment: str | None) -> str:
    return moment[:19].replace("T", " ") if moment else "-"
