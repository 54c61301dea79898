"""The datasheet of a published dataset (identity replacement): its figures from the per-face table,
a contact sheet of replaced faces (cut from the published photos: never an original), the generator,
its weights and licence, the data contract's result; as Markdown and as one self-contained HTML page
(images inline, no scripts). It is published with the dataset, in DEST: it names the source and
destination by their last path element only, and points at no private file.
Over 300 lines: the Markdown and the HTML page render the same rows (`_rows`, `_realism_rows`) from the
same figures."""

from __future__ import annotations

import base64
import html
import json

import numpy as np
import pandas as pd

from faceveil.storage.paths import Location

DATASHEET_MD = "datasheet.md"  # in DEST, published with the dataset
DATASHEET_HTML = "datasheet.html"
CONTACT_SHEET = "datasheet-faces.png"
PUBLIC_FILES = (DATASHEET_MD, DATASHEET_HTML, CONTACT_SHEET)
FACES = "publish/faces.parquet"  # in the state root, with the publication's summary
SUMMARY = "publish/summary.json"
SHEET_FACES = 12  # replaced faces on the contact sheet
SHEET_COLUMNS = 6
REFERENCE_FACES = 48  # faces also blurred and filled (solid) as references for realism: embedding costs time
REFERENCES = ("blur", "solid")
FD_MIN_FACES = 5  # fewer test or reference faces than this: no Fréchet distance


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
        return {
            "faces": 0,
            "reid_threshold": reid_threshold,
            "id_margin": id_margin,
            "reid_rate": None,
            "over_margin_rate": None,
            "still_detected": None,
            "pose_error_deg": None,
            "skin_delta_e": None,
            "seconds_per_face": None,
            "mean_identity_cosine": None,
            "surrogates": 0,
            "faces_sharing_a_surrogate": 0,
        }
    cos = faces["identity_cosine"].astype(float)
    return {
        "faces": n,
        "reid_threshold": reid_threshold,
        "id_margin": id_margin,
        "reid_rate": float((cos >= reid_threshold).mean()),
        "over_margin_rate": float((cos >= id_margin).mean()),
        "mean_identity_cosine": _mean(cos),
        "still_detected": float((faces["detector_score"] >= detected_at).mean()),
        "pose_error_deg": _mean(faces["pose_error_deg"]),
        "skin_delta_e": _mean(faces["skin_delta_e"]),
        "seconds_per_face": _mean(faces["seconds"]),
        "surrogates": int(faces["surrogate_id"].nunique()),
        "faces_sharing_a_surrogate": int(faces["surrogate_id"].duplicated(keep=False).sum()),
    }


def realism_metrics(faces: pd.DataFrame, measured: list[dict]) -> dict:
    """The publication's realism (validation/realism.py), over every face as published (those the
    fallback chain filled too: they show no face). Fréchet distances in dlib's 128-d space from the
    test faces (the first REFERENCE_FACES, at most half of all, which measure_faces also blurred and
    filled) as published, blurred, filled (solid) and as they were (the floor: real against real) to
    the originals of every face of another surrogate (other people: against its own original a face's
    distance would count its identity change); none with under FD_MIN_FACES on a side. Per-face
    sharpness ratio: median and share below realism.SOFT_BELOW.
    `faces` rows follow `measured`'s."""
    from faceveil.validation.realism import SOFT_BELOW, disjoint_reference, frechet_distance, sharpness_summary

    sharp = sharpness_summary(faces["sharpness"] if "sharpness" in faces else [])
    out = {
        "space": "dlib-resnet 128-d",
        "faces": 0,
        "reference_faces": 0,
        "fd": {},
        "sharpness_median": sharp["median"],
        "soft_share": sharp["soft_share"],
        "soft_below": SOFT_BELOW,
    }
    vecs = [m["vectors"] for m in measured if m["rows"]]
    if not vecs:
        return out
    cat = lambda key: np.vstack([v[key] for v in vecs if len(v.get(key, ()))] or [np.zeros((0, 128))])  # noqa: E731
    test = np.concatenate([np.arange(len(v["original"])) < len(v.get(REFERENCES[0], ())) for v in vecs])
    ref = disjoint_reference(faces["surrogate_id"].to_numpy(), test)
    out.update(faces=int(test.sum()), reference_faces=int(ref.sum()))
    if min(test.sum(), ref.sum()) >= FD_MIN_FACES:
        sets = {"replaced": cat("replaced")[test], "real": cat("original")[test], **{k: cat(k) for k in REFERENCES}}
        out["fd"] = {k: frechet_distance(v, cat("original")[ref]) for k, v in sets.items()}
    return out


def contact_sheet(crops: list, faces: int = SHEET_FACES) -> bytes | None:
    """PNG of up to `faces` replaced faces (crops of one size), SHEET_COLUMNS to a row, with a gap
    between."""
    import cv2

    if not crops:
        return None
    crops = list(crops[:faces])
    side, gap = crops[0].shape[0], 4
    blank = np.full((side, side, 3), 255, np.uint8)
    crops += [blank] * (-len(crops) % min(SHEET_COLUMNS, len(crops)))
    cols = min(SHEET_COLUMNS, len(crops))
    vgap, hgap = np.full((side, gap, 3), 255, np.uint8), None
    rows = [
        np.hstack([c for crop in crops[i : i + cols] for c in (crop, vgap)][:-1]) for i in range(0, len(crops), cols)
    ]
    hgap = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    sheet = np.vstack([r for row in rows for r in (row, hgap)][:-1])
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
        table = [
            (
                "Table",
                f"{t['output']}: {t['rows']} rows, images in column {t['image_column']} ({c['replaced']} with "
                f"faces replaced, {c['no_face']} without a face, {c['no_image']} without an image, "
                f"{c['failed'] + c['withheld']} failed: image bytes null)",
            )
        ]
    return table + [
        (
            "Photos",
            f"{info['photos']} ({info['photos_without_faces']} without a face, copied unchanged; "
            f"{info['failed']} failed)",
        ),
        ("Faces replaced", str(m["faces"])),
        (
            "Faces per method (fallback chain; solid: the region filled, no face shown)",
            ", ".join(f"{k} {v}" for k, v in m.get("faces_by_method", {}).items()) or "-",
        ),
        (f"Re-identified (dlib cosine >= {m['reid_threshold']:.3f})", _fmt(m["reid_rate"], pct=True)),
        (f"Identity cosine >= margin {m['id_margin']:.2f}", _fmt(m["over_margin_rate"], pct=True)),
        ("Mean identity cosine to the original", _fmt(m["mean_identity_cosine"], digits=3)),
        ("Still detected (CenterFace >= 0.2)", _fmt(m["still_detected"], pct=True)),
        ("Mean pose error (degrees)", _fmt(m["pose_error_deg"], digits=1)),
        ("Mean skin ΔE2000", _fmt(m["skin_delta_e"], digits=1)),
        ("Seconds per face", _fmt(m["seconds_per_face"], digits=2)),
        (
            "Surrogates (faces of one person in several photos share one)",
            f"{m.get('surrogates', 0)} for {m['faces']} faces; {m.get('faces_sharing_a_surrogate', 0)} faces share theirs",
        ),
        ("Generator", g["name"]),
        ("Generator weights", g["weights_id"]),
        (
            "Data contract",
            "passed" if info["contracts"]["success"] else "FAILED: " + "; ".join(info["contracts"]["failures"]),
        ),
    ]


def _realism_rows(info: dict) -> list[tuple[str, str]]:
    """The realism figures shown beside the contact sheet (`realism_metrics`; none before it existed)."""
    r = info["metrics"].get("realism")
    if not r:
        return []
    fd = r["fd"]
    names = (
        ("replaced", "as published"),
        ("blur", "blurred"),
        ("solid", "filled (solid)"),
        ("real", "the originals (floor)"),
    )
    dist = (
        "; ".join(f"{label} {_fmt(fd.get(k), digits=3)}" for k, label in names)
        if fd
        else f"n/a (fewer than {FD_MIN_FACES} faces on a side)"
    )
    return [
        (
            f"Fréchet distance to real faces of other people ({r['space']}; lower: more like real faces)",
            f"{dist}; on the first {r['faces']} faces (at most {REFERENCE_FACES} and half of all: blurring and "
            f"filling them costs embedding time) against the originals of {r['reference_faces']} faces of other people",
        ),
        (
            "Sharpness: fine detail in the face over that of the photo around it (about 1: as sharp as its photo)",
            f"median {_fmt(r['sharpness_median'])}; {_fmt(r['soft_share'], pct=True)} of the faces below "
            f"{r['soft_below']} (soft)",
        ),
    ]


def _files(info: dict) -> list[str]:
    """What the published dataset holds (its private records are named, not linked: they stay with
    the publisher)."""
    files = ["the photos, in the source's folder tree: every face replaced (photos without a face unchanged)"]
    if info.get("table"):
        files = [f"`{info['table']['output']}`: the published table (same schema and row order; image bytes replaced)"]
    return files + [
        f"`{DATASHEET_MD}`, `{DATASHEET_HTML}`, `{CONTACT_SHEET}`: this datasheet and its contact sheet",
        "not published: the per-face figures, the per-row record and the run's report, kept by the "
        "publisher apart from the dataset",
    ]


def _public(info: dict) -> dict:
    """The datasheet's view of the source and destination: their last path element only (the full
    paths, which may name a user or a private share, stay in the private summary)."""
    name = lambda url: url.rstrip("/").rsplit("/", 1)[-1] or url  # noqa: E731
    return {**info, "src": name(str(info["src"])), "dest": name(str(info["dest"]))}


def render_markdown(info: dict) -> str:
    info = _public(info)
    lines = [
        f"# Datasheet: {info['dest']}",
        "",
        f"Published from `{info['src']}` by faceveil {info['faceveil_version']} "
        f"(run {info['run_id']}, {info['created_at']}): every face replaced by a generated face of another identity "
        "that keeps its pose, expression and skin colour; pixels outside each face's mask unchanged.",
        "",
        "## Figures",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in _rows(info)]
    lines += [
        "",
        "## Licence",
        "",
        info["generator"]["licence"],
        "",
        "## Contact sheet",
        "",
        f"Replaced faces, as published (up to {SHEET_FACES}):",
        "",
        f"![contact sheet]({CONTACT_SHEET})" if info.get("has_contact_sheet") else "(no faces)",
        "",
    ]
    if _realism_rows(info):
        lines += ["Realism, measured:", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in _realism_rows(info)] + [""]
    lines += ["## Files", ""] + [f"- {f}" for f in _files(info)] + [""]
    return "\n".join(lines)


def render_html(info: dict, png: bytes | None) -> str:
    e = html.escape
    info = _public(info)
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _rows(info))
    img = (
        f'<img alt="contact sheet: replaced faces" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else "<p>(no faces)</p>"
    )
    files = "".join(f"<li>{e(f).replace('`', '')}</li>" for f in _files(info))
    realism = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _realism_rows(info))
    realism = f"<p>Realism, measured:</p><table>{realism}</table>" if realism else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Datasheet: {e(info["dest"])}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}th{{text-align:left;padding-right:1em}}
td,th{{border-bottom:1px solid #ddd;padding:4px}}.licence{{background:#fff4d6;border:1px solid #e0b000;padding:1em}}
img{{width:100%;max-width:600px}}</style></head><body>
<h1>Datasheet: {e(info["dest"])}</h1>
<p>Published from <code>{e(info["src"])}</code> by faceveil {e(info["faceveil_version"])} (run {e(info["run_id"])},
{e(info["created_at"])}): every face replaced by a generated face of another identity that keeps its pose, expression and
skin colour; pixels outside each face's mask unchanged.</p>
<section id="figures"><h2>Figures</h2><table>{rows}</table></section>
<section id="licence"><h2>Licence</h2><p class="licence">{e(info["generator"]["licence"])}</p></section>
<section id="contact-sheet"><h2>Contact sheet</h2><p>Replaced faces, as published (up to {SHEET_FACES}):</p>{img}{realism}</section>
<section id="files"><h2>Files</h2><ul>{files}</ul></section>
</body></html>
"""


def write_datasheet(dest: Location, state: Location, info: dict, png: bytes | None) -> dict:
    """Writes the datasheet (datasheet.md, .html and the contact sheet PNG) into DEST, the public tree,
    and the publication's summary (full paths, settings, figures) into the state root; their paths."""
    info = {**info, "has_contact_sheet": png is not None}
    if png is not None:
        dest.write_bytes(CONTACT_SHEET, png)
    dest.write_bytes(DATASHEET_MD, render_markdown(info).encode())
    dest.write_bytes(DATASHEET_HTML, render_html(info, png).encode())
    state.write_bytes(SUMMARY, json.dumps(info, indent=2, default=str).encode())
    return {"markdown": DATASHEET_MD, "html": DATASHEET_HTML, "summary": SUMMARY}
