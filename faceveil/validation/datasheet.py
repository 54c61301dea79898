"""The datasheet of a published dataset (identity replacement): its figures from the per-face table,
a contact sheet (original -> blur -> replaced), the generator, its weights and licence, the data
contract's result; as Markdown and as one self-contained HTML page (images inline, no scripts)."""
from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
import pandas as pd

from faceveil.storage.paths import META_DIR, Location

DATASHEET_MD = f"{META_DIR}/datasheet.md"
DATASHEET_HTML = f"{META_DIR}/datasheet.html"
CONTACT_SHEET = f"{META_DIR}/publish/contact_sheet.png"


def _mean(s: pd.Series) -> float | None:
    s = s.astype(float)
    s = s[np.isfinite(s)]
    return float(s.mean()) if len(s) else None


def publication_metrics(faces: pd.DataFrame, reid_threshold: float, id_margin: float, detected_at: float = 0.2) -> dict:
    """The figures of a publication from its per-face table: share of faces re-identified (identity
    cosine to the original >= `reid_threshold`), share above the margin, share still found by
    CenterFace at `detected_at`, mean pose error, mean skin ΔE2000, seconds per face, how many
    surrogates there are and how many faces share one (one per person seen in several photos)."""
    n = len(faces)
    if not n:
        return {"faces": 0, "reid_threshold": reid_threshold, "id_margin": id_margin, "reid_rate": None,
                "over_margin_rate": None, "still_detected": None, "pose_error_deg": None, "skin_delta_e": None,
                "seconds_per_face": None, "mean_identity_cosine": None, "surrogates": 0, "faces_sharing_a_surrogate": 0}
    cos = faces["identity_cosine"].astype(float)
    return {"faces": n, "reid_threshold": reid_threshold, "id_margin": id_margin,
            "reid_rate": float((cos >= reid_threshold).mean()), "over_margin_rate": float((cos >= id_margin).mean()),
            "mean_identity_cosine": _mean(cos), "still_detected": float((faces["detector_score"] >= detected_at).mean()),
            "pose_error_deg": _mean(faces["pose_error_deg"]), "skin_delta_e": _mean(faces["skin_delta_e"]),
            "seconds_per_face": _mean(faces["seconds"]), "surrogates": int(faces["surrogate_id"].nunique()),
            "faces_sharing_a_surrogate": int(faces["surrogate_id"].duplicated(keep=False).sum())}


def contact_sheet(crops: list) -> bytes | None:
    """PNG of up to 6 rows: original | blur | replaced (each crop the same size), with a gap between."""
    import cv2

    if not crops:
        return None
    side, gap = crops[0][0].shape[0], 4
    rows = [np.hstack([c for pair in zip(triple, [np.full((side, gap, 3), 255, np.uint8)] * 3) for c in pair][:-1])
            for triple in crops[:6]]
    sep = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    sheet = np.vstack([r for row in rows for r in (row, sep)][:-1])
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return buf.tobytes() if ok else None


def _fmt(v, pct: bool = False, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{100 * v:.1f} %" if pct else f"{v:.{digits}f}"


def _rows(info: dict) -> list[tuple[str, str]]:
    m, g = info["metrics"], info["generator"]
    table = []
    if info.get("table"):
        t, c = info["table"], info["table"]["counts"]
        table = [("Table", f"{t['output']}: {t['rows']} rows, images in column {t['image_column']} ({c['replaced']} with "
                           f"faces replaced, {c['no_face']} without a face, {c['no_image']} without an image, "
                           f"{c['failed'] + c['withheld']} failed: image bytes null)")]
    return table + [
        ("Photos", f"{info['photos']} ({info['photos_without_faces']} without a face, copied unchanged; "
                   f"{info['failed']} failed)"),
        ("Faces replaced", str(m["faces"])),
        (f"Re-identified (dlib cosine >= {m['reid_threshold']:.3f})", _fmt(m["reid_rate"], pct=True)),
        (f"Identity cosine >= margin {m['id_margin']:.2f}", _fmt(m["over_margin_rate"], pct=True)),
        ("Mean identity cosine to the original", _fmt(m["mean_identity_cosine"], digits=3)),
        ("Still detected (CenterFace >= 0.2)", _fmt(m["still_detected"], pct=True)),
        ("Mean pose error (degrees)", _fmt(m["pose_error_deg"], digits=1)),
        ("Mean skin ΔE2000", _fmt(m["skin_delta_e"], digits=1)),
        ("Seconds per face", _fmt(m["seconds_per_face"], digits=2)),
        ("Surrogates (faces of one person in several photos share one)",
         f"{m.get('surrogates', 0)} for {m['faces']} faces; {m.get('faces_sharing_a_surrogate', 0)} faces share theirs"),
        ("Generator", g["name"]),
        ("Generator weights", g["weights_id"]),
        ("Data contract", "passed" if info["contracts"]["success"] else
         "FAILED: " + "; ".join(info["contracts"]["failures"])),
    ]


def render_markdown(info: dict) -> str:
    lines = [f"# Datasheet: {info['dest']}", "", f"Published from `{info['src']}` by faceveil {info['faceveil_version']} "
             f"(run {info['run_id']}, {info['created_at']}): every face replaced by a generated face of another identity "
             "that keeps its pose, expression and skin colour; pixels outside each face's mask unchanged.", "",
             "## Figures", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in _rows(info)]
    lines += ["", "## Licence", "", info["generator"]["licence"], "",
              "## Contact sheet", "", "Original, blurred, replaced (up to 6 faces):", "",
              "![contact sheet](publish/contact_sheet.png)" if info.get("has_contact_sheet") else "(no faces)", "",
              "## Files", "", "- `_faceveil/publish/faces.parquet`: one row per face (media, face index, surrogate id, "
              "identity cosine, pose error, skin ΔE, detector score, size, seconds)",
              "- `_faceveil/publish/summary.json`: the run's figures and settings"]
    if info.get("table"):
        lines += [f"- `{info['table']['output']}`: the published table (same schema and row order; image bytes replaced)",
                  "- `_faceveil/publish/rows.parquet`: one row per table row (row, staged media, status, reason, faces)"]
    lines.append("")
    return "\n".join(lines)


def render_html(info: dict, png: bytes | None) -> str:
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _rows(info))
    img = (f'<img alt="contact sheet: original, blur, replaced" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
           if png else "<p>(no faces)</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Datasheet: {e(info['dest'])}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}th{{text-align:left;padding-right:1em}}
td,th{{border-bottom:1px solid #ddd;padding:4px}}.licence{{background:#fff4d6;border:1px solid #e0b000;padding:1em}}
img{{image-rendering:pixelated;width:100%;max-width:600px}}</style></head><body>
<h1>Datasheet: {e(info['dest'])}</h1>
<p>Published from <code>{e(info['src'])}</code> by faceveil {e(info['faceveil_version'])} (run {e(info['run_id'])},
{e(info['created_at'])}): every face replaced by a generated face of another identity that keeps its pose, expression and
skin colour; pixels outside each face's mask unchanged.</p>
<section id="figures"><h2>Figures</h2><table>{rows}</table></section>
<section id="licence"><h2>Licence</h2><p class="licence">{e(info['generator']['licence'])}</p></section>
<section id="contact-sheet"><h2>Contact sheet</h2><p>Original, blurred, replaced (up to 6 faces):</p>{img}</section>
<section id="files"><h2>Files</h2><ul><li><code>_faceveil/publish/faces.parquet</code>: one row per face</li>
<li><code>_faceveil/publish/summary.json</code>: the run's figures and settings</li></ul></section>
</body></html>
"""


def write_datasheet(dest: Location, info: dict, png: bytes | None) -> dict:
    """Writes DEST/_faceveil/datasheet.md and .html (and the contact sheet PNG); their paths."""
    info = {**info, "has_contact_sheet": png is not None}
    if png is not None:
        dest.write_bytes(CONTACT_SHEET, png)
    dest.write_bytes(DATASHEET_MD, render_markdown(info).encode())
    dest.write_bytes(DATASHEET_HTML, render_html(info, png).encode())
    dest.write_bytes(f"{META_DIR}/publish/summary.json", json.dumps(info, indent=2, default=str).encode())
    return {"markdown": DATASHEET_MD, "html": DATASHEET_HTML, "summary": f"{META_DIR}/publish/summary.json"}
