"""Charts drawn on the server as PNG images, for the weekly KPI report's email.

Mail clients run no script and many strip SVG, so the report's charts are pictures:
matplotlib's Agg backend (no display, no GUI toolkit; the object API, not ``pyplot``,
so that nothing global is shared between threads) draws each one; the email carries them
as inline parts (``Content-ID``) that its HTML shows with ``<img src="cid:...">``.

Every chart has both axes labelled with values (money with its currency symbol, from
:func:`abm.services.kpi_glossary.money`) and a text alternative that states every value,
so that a reader who does not load images still gets the figures.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

BAR = "#2b6cb0"
INK = "#1a202c"
MUTED = "#4a5568"
WIDTH_IN, HEIGHT_IN, DPI = 6.4, 2.4, 100  # 640 x 240 pixels


@dataclass(frozen=True)
class Chart:
    """One picture: its PNG bytes and the text that says what it shows."""

    png: bytes
    alt: str
    axis_labels: tuple[str, ...] = ()  # the value axis' tick labels as drawn


def _figure(title: str, height: float = HEIGHT_IN) -> tuple[Figure, object]:
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, loc="left", fontsize=11, color=INK)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8, colors=MUTED)
    return fig, ax


def _chart(fig: Figure, axis, alt: str) -> Chart:
    out = io.BytesIO()
    fig.tight_layout()
    fig.savefig(out, format="png", metadata={"Software": None})
    lo, hi = axis.get_view_interval()
    drawn = tuple(label.get_text() for at, label in zip(axis.get_majorticklocs(), axis.get_ticklabels(), strict=False)
                  if lo <= at <= hi)
    return Chart(out.getvalue(), alt, drawn)


def weekly(title: str, weeks: Sequence[str], values: Sequence[float], fmt: Callable[[float], str]) -> Chart:
    """Columns, one per week (oldest first); the y axis shows values through ``fmt``."""
    fig, ax = _figure(title)
    labels = [w[5:] for w in weeks]  # MM-DD
    ax.bar(range(len(values)), values, color=BAR, width=0.6)
    ax.set_xticks(range(len(values)), labels)
    ax.set_xlabel("week starting", fontsize=8, color=MUTED)
    ax.set_ylim(0, (max(values) if values and max(values) > 0 else 1) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v)))
    ax.grid(axis="y", alpha=0.25)
    for x, v in enumerate(values):
        ax.annotate(fmt(v), (x, v), ha="center", va="bottom", fontsize=7, color=INK, xytext=(0, 2),
                    textcoords="offset points")
    alt = f"{title}, week by week: " + "; ".join(f"week of {w}: {fmt(v)}" for w, v in zip(weeks, values, strict=True))
    return _chart(fig, ax.yaxis, alt)


def ranking(title: str, names: Sequence[str], values: Sequence[float], fmt: Callable[[float], str]) -> Chart:
    """Horizontal bars, one per group, largest on top; the x axis shows values through ``fmt``."""
    height = max(1.6, 0.9 + 0.3 * len(names))
    fig, ax = _figure(title, height)
    order = list(range(len(names)))[::-1]
    ax.barh([names[i] for i in order] or [""], [values[i] for i in order] or [0], color=BAR, height=0.6)
    ax.set_xlim(0, (max(values) if values and max(values) > 0 else 1) * 1.2)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v)))
    ax.grid(axis="x", alpha=0.25)
    for y, i in enumerate(order):
        ax.annotate(fmt(values[i]), (values[i], y), va="center", fontsize=7, color=INK, xytext=(3, 0),
                    textcoords="offset points")
    alt = f"{title}: " + ("; ".join(f"{n}: {fmt(v)}" for n, v in zip(names, values, strict=True)) or "none")
    return _chart(fig, ax.xaxis, alt)
