"""The report's plots (matplotlib, rendered off-screen to PNG bytes): face coverage per video, and the
leak and re-identification rate per media."""

from __future__ import annotations

import io
import math

from faceveil.validation.report_parts import dig, fmt, num


def videos_of(report: dict) -> list[tuple[str, dict]]:
    """(path, coverage) of every video in the report with more than one frame."""
    kinds = {m.get("path"): m.get("kind") for m in report.get("media") or []}
    return [
        (p, c)
        for p, c in (report.get("coverage") or {}).items()
        if isinstance(c, dict) and kinds.get(p) != "image" and (c.get("n_frames") or 0) > 1
    ]


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _rows(ax, labels) -> None:
    ax.set_yticks(range(len(labels)), [p if len(p) <= 40 else "…" + p[-39:] for p in labels], fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)


def plots(report: dict, max_rows: int = 40) -> dict[str, bytes]:
    """PNG bytes per plot name ('coverage', 'privacy'), only for plots that have data (matplotlib is
    imported only then: a run with nothing new has none)."""
    videos = videos_of(report)[:max_rows]
    media = [m for m in report.get("media") or [] if any(num(m.get(f"{k}_rate")) is not None for k in ("leak", "reid"))]
    if not videos and not media:
        return {}
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    out = {}
    if videos:
        fig = Figure(figsize=(10, 1.3 + 0.35 * len(videos)), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        colours = {"no face": "#e0e0e0", "detected": "#2e7d32", "filled": "#f9a825", "redacted": "#c62828"}
        for row, (_, cov) in enumerate(videos):
            for kind, colour in colours.items():
                spans = [(0, cov["n_frames"])] if kind == "no face" else [(a, b - a) for a, b in cov.get(kind) or []]
                ax.broken_barh([s for s in spans if s[1] > 0], (row - 0.35, 0.7), color=colour)
        _rows(ax, [p for p, _ in videos])
        ax.set_xlim(0, max(c["n_frames"] for _, c in videos))
        ax.set_xlabel("frame")
        fig.legend(
            handles=[Patch(color=c, label=k) for k, c in colours.items()],
            loc="outside upper center",
            ncols=4,
            fontsize=8,
            frameon=False,
            title="Face coverage per video",
            title_fontsize=10,
        )
        out["coverage"] = _png(fig)
    if media:
        media = media[:max_rows]
        fig = Figure(figsize=(10, 1.5 + 0.45 * len(media)), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        rates = {k: [num(m.get(f"{k}_rate")) for m in media] for k in ("leak", "reid")}
        top = max([1.0] + [v for vs in rates.values() for v in vs if v is not None and math.isfinite(v)]) * 1.1
        for off, key, colour, name, what in (
            (-0.2, "leak", "#1565c0", "leak rate", "unmasked faces the leak gate confirmed"),
            (0.2, "reid", "#8e24aa", "re-id rate", "original/anonymized cosine"),
        ):
            thr = num(dig(report, "privacy", key, "threshold"))
            for y, v in enumerate(rates[key]):
                if v is not None:
                    ax.text(min(v, top), y + off, f" {fmt(v)}", va="center", fontsize=7)
            ax.barh(
                [y + off for y in range(len(media))],
                [math.nan if v is None else min(v, top) for v in rates[key]],
                0.4,
                color=colour,
                label=f"{name} ({what} ≥ {fmt(thr)})",
            )
        _rows(ax, [m.get("path") or "?" for m in media])
        ax.set_xlim(0, top)
        ax.set_xlabel("rate")
        fig.legend(
            loc="outside upper center",
            ncols=2,
            fontsize=8,
            frameon=False,
            title="Leak and re-identification rate per media",
            title_fontsize=10,
        )
        out["privacy"] = _png(fig)
    return out
