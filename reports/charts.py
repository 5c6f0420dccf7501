"""Charts as inline SVG strings, drawn by matplotlib without pyplot (no global state).

The SVG is trusted only because matplotlib writes it: labels coming from results (impl
names) are set as plain text with math parsing off, and matplotlib escapes text in SVG.
The XML prolog, DOCTYPE, metadata and namespace declarations are stripped: none is needed
inline in HTML5 and each carries a URL (the page must contain none).
"""

from __future__ import annotations

import io
import re
from itertools import cycle

from lsresults.text import one_line

ZERO_FLOOR = 1e-18  # errors of exactly 0 are drawn here on log axes (and the caption says so)
MAX_LABEL = 60  # legend labels longer than this are cut
# Points beyond this magnitude (or below its inverse, for x) are left out of a chart (the
# tables still show them): no measured K, time, error or memory ratio comes near it, and
# matplotlib's tick locators fail on axes spanning ~1e308.
PLOT_LIMIT = 1e100

_STRIP = [
    re.compile(r"<\?xml[^>]*\?>\s*"),
    re.compile(r"<!DOCTYPE[^>]*>\s*", re.IGNORECASE),
    re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL),
    re.compile(r'\s+xmlns(:\w+)?="[^"]*"'),
]
_STYLES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _label(value: str) -> str:
    """Plain text for matplotlib: one line, cut, and `$` escaped so it never starts mathtext
    (math stays on for the axes' own tick labels such as 10^-5)."""
    value = one_line(value)
    value = value if len(value) <= MAX_LABEL else value[: MAX_LABEL - 1] + "…"
    return value.replace("$", r"\$")


def _svg(fig, salt: str) -> str:
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = out.getvalue()
    for pattern in _STRIP:
        svg = pattern.sub("", svg)
    return svg.strip()


def _figure(ncols: int):
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * ncols, 3.8))
    FigureCanvasSVG(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _colours(names: list[str]) -> dict[str, str]:
    palette = cycle(["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
                     "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"])
    return {name: colour for name, colour in zip(dict.fromkeys(names), palette, strict=False)}


Series = dict[tuple[str, str], dict[float, float]]  # (impl, variant) -> {x: y}


def _plottable(x: float, y: float) -> bool:
    return 1 / PLOT_LIMIT <= x <= PLOT_LIMIT and abs(y) <= PLOT_LIMIT


def loglog(panels: list[tuple[str, str, Series, bool]], *, xlabel: str, salt: str) -> str:
    """Panels of (title, ylabel, series, log y?) on a log x axis: colour and marker per
    impl, line style per variant, one legend for the figure."""
    import matplotlib

    with matplotlib.rc_context({"text.usetex": False,
                                "font.size": 8, "svg.fonttype": "none"}):
        fig, axes = _figure(len(panels))
        names = [impl for _, _, series, _ in panels for impl, _ in series]
        colours = _colours(names)
        variants = list(dict.fromkeys(v for _, _, series, _ in panels for _, v in series))
        styles = {v: _STYLES[i % len(_STYLES)] for i, v in enumerate(variants)}
        # marker per implementation as well as colour: coinciding lines stay distinguishable
        markers = {impl: _MARKERS[i % len(_MARKERS)] for i, impl in enumerate(colours)}
        for ax, (title, ylabel, series, ylog) in zip(axes, panels, strict=True):
            for (impl, variant), points in series.items():
                kept = [(x, max(y, ZERO_FLOOR) if ylog else y) for x, y in points.items()
                        if _plottable(x, y)]
                if not kept:
                    continue
                xs, ys = [x for x, _ in kept], [y for _, y in kept]
                style, marker = styles[variant], markers[impl]
                label = _label(f"{impl} · {variant}" if variant else impl)
                ax.plot(xs, ys, linestyle=style, marker=marker, markersize=4, linewidth=1.2,
                        markerfacecolor="none",
                        color=colours[impl], label=label)
            ax.set_xscale("log")
            ax.set_yscale("log" if ylog else "linear")
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
            ax.minorticks_off()  # log minor ticks cost most of the drawing time and say little
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[1:]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                       ncol=min(4, len(labels)), frameon=False)
        fig.subplots_adjust(wspace=0.3)
        return _svg(fig, salt)
