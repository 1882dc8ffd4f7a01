"""The back office's charts, drawn on the server as SVG with pygal: no JavaScript to build or run.

pygal writes a small configuration script into every chart for its optional tooltips; the
bank serves charts as images, where no script runs, and removes it anyway so that the SVG is
inert whatever displays it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pygal
from pygal.style import Style

from fintech.money import in_major_units

_SCRIPT = re.compile(rb"<script\b[^>]*>.*?</script>", re.DOTALL)
_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#333",
    foreground_strong="#111",
    foreground_subtle="#777",
    colors=("#205493", "#e31c3d", "#2e8540", "#fdb81e"),
    font_family="sans-serif",
)
WIDTH, HEIGHT = 900, 320


def _inert(svg: bytes) -> bytes:
    return _SCRIPT.sub(b"", svg)


def _labels(days: Sequence[date]) -> list[str]:
    return [day.strftime("%d/%m") for day in days]


def _draw(
    kind: type[pygal.graph.graph.Graph], title: str, days: Sequence[date], series: Mapping[str, list[Any]]
) -> bytes:
    chart = kind(
        js=[],
        style=_STYLE,
        width=WIDTH,
        height=HEIGHT,
        x_label_rotation=45,
        legend_at_bottom=True,
        allow_interruptions=True,
    )
    chart.title = title
    chart.x_labels = _labels(days)
    for name, values in sorted(series.items()):
        chart.add(name, values)
    return _inert(chart.render())


def daily_volume_chart(days: Sequence[date], volumes: Mapping[str, Sequence[int]]) -> bytes:
    """Completed transfers' volume per day, one series per currency, in major units."""
    in_units = {
        currency: [float(in_major_units(minor, currency)) for minor in minors] for currency, minors in volumes.items()
    }
    return _draw(pygal.Bar, "Volume of completed transfers per day", days, in_units)


def fraud_rate_chart(days: Sequence[date], rates: Mapping[str, Sequence[float | None]]) -> bytes:
    """Fraud alerts over screened operations per day, in percent; a gap where nothing was screened."""
    percent = {
        currency: [None if rate is None else round(rate * 100, 2) for rate in series]
        for currency, series in rates.items()
    }
    return _draw(pygal.Line, "Fraud rate per day (alerts / screened, %)", days, percent)
