"""The audit's pulse section (`--pulse`): per media and track, what the rPPG estimators read before
and after the edit (heart rate, peak SNR), which one the edit was optimised through (the others are
the independent check), and the edit's PSNR."""
from __future__ import annotations

import html
import json


def pulse_figures(pulse_rows: list[dict], paths: dict[str, str]) -> list[dict]:
    """The audit's rows from the audit/pulse manifest rows (`paths`: media id -> relative path)."""
    out = []
    for r in pulse_rows:
        readings = json.loads(r.get("readings_json") or "{}")
        out.append({"path": paths.get(r["media_id"], r["media_id"]), "track_id": int(r["track_id"]),
                    "frames": [int(r["first_frame"]), int(r["last_frame"])], "spec": r["spec"],
                    "optimised": r["optimised"], "before": readings.get("before"), "after": readings.get("after"),
                    "psnr_db": r.get("psnr_db"), "measured": bool(r.get("measured"))})
    return out


def _reading(d: dict | None, name: str) -> str:
    x = (d or {}).get(name) or {}
    if x.get("bpm") is None:
        return "no signal"
    snr = x.get("snr_db")
    return f"{x['bpm']:.1f} bpm ({'-' if snr is None else f'{snr:.1f}'} dB)"


def pulse_html(rows: list[dict]) -> str:
    """A table: one row per track, each estimator's reading before -> after."""
    if not rows:
        return ""
    names = sorted({n for r in rows for n in (r.get("before") or {})})
    head = ["path", "track", "frames", "edit", "optimised through", *[f"{n} before -> after" for n in names],
            "PSNR (dB)", "after measured on"]
    body = []
    for r in rows:
        cells = [r["path"], r["track_id"], f"{r['frames'][0]}-{r['frames'][1]}", r["spec"], r["optimised"],
                 *[f"{_reading(r.get('before'), n)} -> {_reading(r.get('after'), n)}" for n in names],
                 "-" if r.get("psnr_db") is None else f"{r['psnr_db']:.1f}",
                 "the edited frames" if r.get("measured") else "the plan (segment-encoded)"]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<p>Heart rate (spectral peak in 0.7-4 Hz) and peak SNR of the skin-mean trace inside each track's "
            "skin mask, read by rPPG estimators before and after the edit; the estimators the edit was not "
            "optimised through are the independent check.</p><table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(body) + "</table>")
