"""The report's HTML pieces: values formatted and escaped (anything not marked `Html` is escaped),
tables, badges, inline images."""

from __future__ import annotations

import base64
import html
import json
import math

NA = '<p class="na">not measured</p>'


class Html(str):
    """Markup that is already escaped."""


def num(v) -> float | None:
    """A finite-or-infinite float, or None for missing / NaN / non-numbers."""
    if v in ("inf", "-inf"):  # how the stored JSON holds infinities
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(v) else float(v)


def dig(d, *keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else f"{v:.4g}"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str, sort_keys=True)
    return str(v)


def esc(v) -> str:
    return v if isinstance(v, Html) else html.escape(fmt(v), quote=True)


def table(headers, rows, fails=()) -> str:
    if not rows:
        return NA
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        f"<tr{' class=fail' if i in fails else ''}>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
        for i, r in enumerate(rows)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def kv(d) -> str:
    return table(["key", "value"], [[k, v] for k, v in d.items()]) if isinstance(d, dict) and d else NA


def code(v) -> Html:
    return Html(f"<code>{esc(v)}</code>")


def badge(status) -> Html:
    cls = {"ok": "ok", "success": "ok", "true": "ok", "failed": "bad", "leaked": "bad", "error": "bad", "false": "bad"}
    return Html(f'<span class="badge {cls.get(fmt(status).lower(), "warn")}">{esc(status)}</span>')


def img(png: bytes | None, alt: str) -> str:
    return (
        NA
        if not png
        else f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
    )


def covered(intervals) -> int:
    """Frames in a list of half-open [start, stop) intervals, overlaps counted once."""
    total, end = 0, -math.inf
    for a, b in sorted((int(a), int(b)) for a, b in intervals or []):
        if b > max(a, end):
            total += b - max(a, end)
            end = b
    return total
