"""The live status table of a Tune run: trial, status, parameters, latest metric.

In a terminal it is printed as text; in a notebook (an IPython kernel) it is one HTML table
updated in place. ``verbose`` 0 prints nothing, 1 the table at most every 30 s and at the
end, 2 every 5 s, 3 also one line per result.
"""

from __future__ import annotations

import html
import sys
import time
from collections import Counter
from typing import Any

from runtime.tune.results_io import flatten

_INTERVAL = {1: 30.0, 2: 5.0, 3: 5.0}
_MAX_PARAMS = 6


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def status_rows(trials: list[Any], metric: str | None) -> tuple[list[str], list[list[str]]]:
    """The table's header and rows: name, status, parameters, iterations and the metric."""
    params: list[str] = []
    for trial in trials:
        for key in flatten(trial.config):
            if key not in params:
                params.append(key)
    params = params[:_MAX_PARAMS]
    metrics = ["training_iteration"]
    if metric:
        metrics.append(metric)
    header = ["Trial name", "status", *params, "iter", *(metrics[1:])]
    rows = []
    for trial in trials:
        config = flatten(trial.config)
        result = flatten(trial.last_result)
        row = [trial.trial_name, trial.status]
        row += [_fmt(config.get(p, "")) for p in params]
        row += [_fmt(result.get(m, "")) for m in metrics]
        rows.append(row)
    return header, rows


def render_text(trials: list[Any], metric: str | None) -> str:
    """The status table as aligned text, with a count of trials per status above it."""
    header, rows = status_rows(trials, metric)
    counts = Counter(t.status for t in trials)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = [f"Trial status: {summary or 'no trials'}"]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def render_html(trials: list[Any], metric: str | None) -> str:
    """The status table as an HTML table (for notebooks)."""
    header, rows = status_rows(trials, metric)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = getattr(shell, "get_ipython", lambda: None)()
    return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"


class ProgressReporter:
    """Shows the status table per ``verbose``: text in a terminal, HTML in a notebook."""

    def __init__(self, verbose: int, metric: str | None) -> None:
        self.verbose = verbose
        self.metric = metric
        self.live = verbose >= 1
        self._last = time.monotonic()
        self._notebook = _in_notebook() if verbose else False
        self._handle: Any = None

    def _show(self, trials: list[Any]) -> None:
        if self._notebook:
            from IPython.display import HTML, display

            table = HTML(render_html(trials, self.metric))
            if self._handle is None:
                self._handle = display(table, display_id=True)
            else:
                self._handle.update(table)
        else:
            print(render_text(trials, self.metric), flush=True)

    def maybe_report(self, trials: list[Any]) -> None:
        """Show the table if its interval has passed since it was last shown."""
        if not self.verbose:
            return
        now = time.monotonic()
        if now - self._last >= _INTERVAL[self.verbose]:
            self._last = now
            self._show(trials)

    def report_result(self, trial: Any, result: dict[str, Any]) -> None:
        """One line for one result (verbose 3)."""
        shown = {k: result[k] for k in ("training_iteration", self.metric) if k and k in result}
        print(f"Result for {trial.trial_name}: {shown}", flush=True)

    def report_final(self, trials: list[Any]) -> None:
        """The final table, at the end of the run."""
        if self.verbose:
            self._show(trials)
