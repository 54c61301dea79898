"""The report's pulse section (`--pulse`): per media and track, what the rPPG estimators read before
and after the edit (heart rate, peak SNR) in the mask and in every attacker region (face box,
forehead, cheeks, neck: models/rppg/regions.py), which one the edit was optimised through (the others
are the independent check), where the skin mask came from, whether every region passes
(pipeline/pulse.verdict), and the edit's PSNR."""

from __future__ import annotations

import html
import json


def pulse_figures(pulse_rows: list[dict], paths: dict[str, str]) -> list[dict]:
    """The report's rows from the checks/pulse manifest rows (`paths`: media id -> relative path)."""
    out = []
    for r in pulse_rows:
        readings = json.loads(r.get("readings_json") or "{}")
        out.append(
            {
                "path": paths.get(r["media_id"], r["media_id"]),
                "track_id": int(r["track_id"]),
                "frames": [int(r["first_frame"]), int(r["last_frame"])],
                "spec": r["spec"],
                "optimised": r["optimised"],
                "before": readings.get("before"),
                "after": readings.get("after"),
                "regions": readings.get("regions") or {},
                "skin": readings.get("skin"),
                "regions_pass": readings.get("regions_pass"),
                "psnr_db": r.get("psnr_db"),
                "measured": bool(r.get("measured")),
            }
        )
    return out


def _reading(d: dict | None, name: str) -> str:
    x = (d or {}).get(name) or {}
    if x.get("bpm") is None:
        return "no signal"
    snr = x.get("snr_db")
    return f"{x['bpm']:.1f} bpm ({'-' if snr is None else f'{snr:.1f}'} dB)"


def _regions(r: dict) -> str:
    """The verdict over every region, and the worst region's reading where one fails."""
    ok = r.get("regions_pass")
    if ok is None:
        return "not read"
    if ok:
        return f"pass ({len(r.get('regions') or {})} regions)"
    worst = max(
        (
            (name, n, x)
            for name, per in (r.get("regions") or {}).items()
            for n, x in ((per or {}).get("after") or {}).items()
            if x.get("snr_db") is not None
        ),
        key=lambda t: t[2]["snr_db"],
        default=None,
    )
    return "FAIL" + ("" if worst is None else f" ({worst[0]}, {worst[1]}: {_reading({'x': worst[2]}, 'x')})")


def pulse_html(rows: list[dict]) -> str:
    """A table: one row per track, each estimator's reading before -> after."""
    if not rows:
        return ""
    names = sorted({n for r in rows for n in (r.get("before") or {})})
    head = [
        "path",
        "track",
        "frames",
        "edit",
        "optimised through",
        *[f"{n} before -> after" for n in names],
        "every region",
        "skin mask from",
        "PSNR (dB)",
        "after measured on",
    ]
    body = []
    for r in rows:
        cells = [
            r["path"],
            r["track_id"],
            f"{r['frames'][0]}-{r['frames'][1]}",
            r["spec"],
            r["optimised"],
            *[f"{_reading(r.get('before'), n)} -> {_reading(r.get('after'), n)}" for n in names],
            _regions(r),
            r.get("skin") or "landmark polygons",
            "-" if r.get("psnr_db") is None else f"{r['psnr_db']:.1f}",
            "the edited frames" if r.get("measured") else "the plan (segment-encoded)",
        ]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return (
        "<p>Heart rate (spectral peak in 0.7-4 Hz) and peak SNR of the skin-mean trace inside each track's "
        "skin mask, read by rPPG estimators before and after the edit; the estimators the edit was not "
        "optimised through are the independent check. Every region: the mask, the face box, the forehead, "
        "each cheek and the neck, read by each estimator after the edit (scrub: no peak above 3 dB; "
        "target: the target within 3 bpm wherever a peak shows).</p><table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join(body)
        + "</table>"
    )
