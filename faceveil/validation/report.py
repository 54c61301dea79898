"""The self-contained HTML report of a run (plots inline, every reported string escaped),
and its storage beside the JSON report under the state root's `reports/`. Its pieces: validation/report_parts
(escaped values, tables), validation/report_plots. `render_html` is longer than 60 lines: it is the
page's one template, section after section, which reads best in one piece.
Over 300 lines: `render_html`, the page's one template, is most of it."""

from __future__ import annotations

import base64
import json
import math
import posixpath
import re

from faceveil.validation.report_parts import NA, badge, code, covered, esc, img, kv, num, table
from faceveil.validation.report_plots import plots, videos_of

REPORTS = "reports"  # in the state root
SECTIONS = [
    ("summary", "Summary"),
    ("contracts", "Data contracts"),
    ("privacy", "Privacy"),
    ("utility", "Utility"),
    ("coverage", "Coverage"),
    ("pulse", "Pulse (rPPG)"),
    ("media", "Media"),
    ("models", "Models"),
    ("settings", "Settings"),
    ("keys", "Keys"),
    ("review", "Review (exemption log)"),
    ("access-log", "Access log"),
    ("thumbnails", "Thumbnails"),
    ("mlflow", "MLflow"),
]
_RUN_ID = re.compile(r"[A-Za-z0-9T_-]{1,128}")
_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f2f2f2}tr.fail td,p.fail{background:#fde2e2}code{font-size:12px;word-break:break-all}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:bold}
.ok{background:#2e7d32}.bad{background:#c62828}.warn{background:#ef6c00}.na{color:#888;font-style:italic}
img.plot{max-width:100%;border:1px solid #eee}figure{display:inline-block;margin:.5em}
figure img{max-width:240px;max-height:240px;border:1px solid #ccc}figcaption{font-size:12px;max-width:240px;
word-break:break-all}"""


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def _gate(gate) -> str:
    """A warning when the run's leak gate was off (nothing it let through was checked for faces)."""
    if not isinstance(gate, dict) or gate.get("on", True):
        return ""
    return f'<p class="fail" id="gate-off">LEAK GATE OFF: {esc(gate.get("off_because"))}</p>'


def _deep_check(rows: list[dict]) -> str:
    from faceveil.validation.leak_bound import leak_upper_bound

    faces, leaks = sum(r.get("faces_checked") or 0 for r in rows), sum(r.get("leaks") or 0 for r in rows)
    total = f"<p>all: {faces} faces checked, {leaks} leak(s), 95% bound {leak_upper_bound(leaks, faces):.4g}</p>"
    return (
        "<h3>deep check of published media (latest)</h3>"
        + total
        + table(
            [
                "path",
                "status",
                "checked at",
                "frames checked",
                "faces checked",
                "leaks",
                "leak rate 95% bound",
                "leak frames",
                "error",
            ],
            [
                [
                    r.get("rel_path"),
                    r.get("status"),
                    r.get("checked_at"),
                    r.get("frames_checked"),
                    r.get("faces_checked"),
                    r.get("leaks"),
                    r.get("upper_95"),
                    ", ".join(map(str, r.get("leak_frames") or [])),
                    r.get("error"),
                ]
                for r in rows
            ],
            {i for i, r in enumerate(rows) if r.get("leaks") or r.get("error")},
        )
    )


def render_html(report: dict) -> str:
    """One self-contained HTML page for a run's report dict (no scripts, no external URLs)."""
    a, figs, media = report, plots(report), report.get("media") or []
    counts = a.get("counts") or {}
    s = {
        "summary": kv(
            {
                "run id": a.get("run_id"),
                "flow": a.get("flow"),
                "status": badge(a.get("status")),
                "started": a.get("started_at"),
                "finished": a.get("finished_at"),
                "seconds": a.get("seconds"),
                "faceveil version": a.get("faceveil_version"),
                "code version": a.get("code_version"),
                "source": a.get("src"),
                "destination": a.get("dest"),
            }
        )
        + _gate(a.get("leak_gate"))
        + ("<h3>Counts</h3>" + table(list(counts), [list(counts.values())]) if counts else "")
    }
    c = a.get("contracts")
    if isinstance(c, dict):
        res = sorted(c.get("results") or [], key=lambda r: bool(r.get("success")))
        s["contracts"] = f"<p>overall: {badge('ok' if c.get('success') else 'failed')}</p>" + table(
            ["table", "expectation", "column", "success", "unexpected"],
            [
                [r.get("table"), r.get("expectation"), r.get("column"), r.get("success"), r.get("unexpected")]
                for r in res
            ],
            fails={i for i, r in enumerate(res) if not r.get("success")},
        )
    p = a.get("privacy")
    if isinstance(p, dict):
        parts = [
            f"<h3>{esc(k.replace('_', ' '))}</h3>"
            + (kv(v) if isinstance(v, dict) else NA if v is None else f"<p>{esc(v)}</p>")
            for k, v in p.items()
        ]
        rows = [m for m in media if any(num(m.get(f"{k}_rate")) is not None for k in ("leak", "reid"))]
        fails = {i for i, m in enumerate(rows) if any((num(m.get(f"{k}_rate")) or 0) > 0 for k in ("leak", "reid"))}
        parts.append(
            "<h3>per media</h3>"
            + table(
                [
                    "path",
                    "leak rate",
                    "leaked faces",
                    "faces checked",
                    "leak rate 95% bound",
                    "re-id rate",
                    "re-id checked",
                ],
                [
                    [
                        m.get("path"),
                        m.get("leak_rate"),
                        m.get("leak_faces"),
                        m.get("leak_faces_checked"),
                        m.get("leak_upper_95"),
                        m.get("reid_rate"),
                        m.get("reid_checked"),
                    ]
                    for m in rows
                ],
                fails,
            )
            + img(figs.get("privacy"), "privacy plot")
        )
        s["privacy"] = "".join(parts)
    if a.get("deep_check"):  # the latest deep check of published media (faceveil check), whatever run it followed
        s["privacy"] = s.get("privacy", "") + _deep_check(a["deep_check"])
    if isinstance(a.get("utility"), dict):
        rows = [
            m for m in media if any(m.get(k) is not None for k in ("background_psnr", "background_ssim", "face_ssim"))
        ]
        s["utility"] = (
            kv(a["utility"])
            + "<h3>per media</h3>"
            + table(
                ["path", "background PSNR (dB)", "background SSIM", "face SSIM"],
                [[m.get("path"), m.get("background_psnr"), m.get("background_ssim"), m.get("face_ssim")] for m in rows],
            )
        )
    videos = videos_of(a)
    if videos:
        rows = []
        for path, cv in videos:
            n, d, f, r = cv.get("n_frames"), *(covered(cv.get(k)) for k in ("detected", "filled", "redacted"))
            rows.append(
                [
                    path,
                    n,
                    cv.get("fps"),
                    d,
                    f,
                    r,
                    n - covered([*(cv.get("detected") or []), *(cv.get("filled") or []), *(cv.get("redacted") or [])]),
                ]
            )
        s["coverage"] = img(figs.get("coverage"), "coverage plot") + table(
            ["video", "frames", "fps", "detected", "filled", "redacted", "without faces"], rows
        )
    if a.get("pulse"):
        from faceveil.validation.pulse_report import pulse_html

        s["pulse"] = pulse_html(a["pulse"])
    if media:
        s["media"] = table(
            [
                "path",
                "kind",
                "method",
                "status",
                "reason",
                "input sha256",
                "output path",
                "output sha256",
                "frames",
                "faces",
                "tracks",
                "audio in",
                "audio out",
            ],
            [
                [
                    m.get("path"),
                    m.get("kind"),
                    m.get("method"),
                    badge(m.get("status")),
                    m.get("reason"),
                    code(m.get("input_sha256")),
                    m.get("output_path"),
                    code(m.get("output_sha256")),
                    m.get("frames"),
                    m.get("faces"),
                    m.get("tracks"),
                    m.get("has_audio_in"),
                    m.get("has_audio_out"),
                ]
                for m in media
            ],
            {i for i, m in enumerate(media) if m.get("status") not in ("ok", "already_done")},
        )
    for key, title in (("failures", "Failures"), ("not_media", "Not media")):
        if a.get(key):
            s["media"] = (
                s.get("media", "")
                + f"<h3>{title}</h3>"
                + table(["path", "reason"], [[x.get("path"), x.get("reason")] for x in a[key]])
            )
    if a.get("models"):
        s["models"] = table(
            ["name", "role", "weights", "licence"],
            [[m.get("name"), m.get("role"), code(m.get("weights")), m.get("licence")] for m in a["models"]],
        )
    s["settings"] = kv(a.get("settings"))
    if isinstance(a.get("keys"), dict):  # fingerprints and flags only, never key material
        s["keys"] = kv(
            {
                k: code(v) if "fingerprint" in k else v
                for k, v in a["keys"].items()
                if "fingerprint" in k or isinstance(v, bool) or v is None
            }
        )
    if a.get("review"):  # what reviewers did after the gate (faceveil review): every action, from the access log
        s["review"] = table(
            ["seq", "time", "actor", "action", "targets", "reason", "outcome"],
            [
                [
                    r.get("seq"),
                    r.get("time"),
                    r.get("actor"),
                    r.get("action"),
                    ", ".join(map(str, r.get("targets") or [])),
                    r.get("reason"),
                    r.get("outcome"),
                ]
                for r in a["review"]
            ],
            {i for i, r in enumerate(a["review"]) if r.get("outcome") != "done"},
        )
    if a.get("access_log"):
        s["access-log"] = table(
            ["seq", "time", "actor", "action", "reason", "matched", "key fingerprint"],
            [
                [
                    r.get("seq"),
                    r.get("time"),
                    r.get("actor"),
                    r.get("action"),
                    r.get("reason"),
                    ", ".join(map(str, r.get("matched") or [])),
                    code(r.get("key_fingerprint")),
                ]
                for r in a["access_log"]
            ],
        )
    thumbs = []
    for t in a.get("thumbnails") or []:
        try:
            raw = base64.b64decode(t.get("png_base64") or "", validate=True)
        except (ValueError, TypeError):
            continue
        mime = "png" if raw.startswith(b"\x89PNG") else "jpeg" if raw.startswith(b"\xff\xd8") else None
        if mime:
            thumbs.append(
                f'<figure><img alt="{esc(t.get("path"))}" src="data:image/{mime};base64,'
                f'{base64.b64encode(raw).decode()}"><figcaption>{esc(t.get("path"))} '
                f"frame {esc(t.get('frame'))}</figcaption></figure>"
            )
    if thumbs:
        s["thumbnails"] = "".join(thumbs)
    if isinstance(a.get("mlflow"), dict):
        s["mlflow"] = kv(
            {
                k.replace("_", " "): a["mlflow"][k]
                for k in ("tracking_uri", "experiment", "run_id", "artifacts")
                if k in a["mlflow"]
            }
        )
    body = "\n".join(_section(sid, title, s.get(sid) or NA) for sid, title in SECTIONS)
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>faceveil run {esc(a.get('run_id'))}</title><style>{_CSS}</style></head>\n<body>"
        f"<h1>faceveil run {esc(a.get('run_id'))} {badge(a.get('status'))}</h1>\n{body}\n</body></html>\n"
    )


def _check_run_id(run_id) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"{run_id!r}: not a run id (letters, digits, '_' and '-' only)")
    return run_id


def strict_json(v):
    """`v` with NaN as null and infinities as "inf" / "-inf" (valid JSON for any reader)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {str(k): strict_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [strict_json(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return strict_json(v.item())
    return v


def write_report(dest, report: dict, latest: bool = True) -> dict[str, str]:
    """Writes the report JSON and HTML of the run (and latest.json / latest.html) under the state root `dest`."""
    run_id = _check_run_id(report.get("run_id"))
    report = strict_json(report)
    blob = json.dumps(report, indent=2, default=str, sort_keys=True, allow_nan=False).encode()
    dest.write_bytes(f"{REPORTS}/{run_id}.json", blob)  # stored even if rendering fails
    page = render_html(report).encode()
    dest.write_bytes(f"{REPORTS}/{run_id}.html", page)
    if latest:
        dest.write_bytes(f"{REPORTS}/latest.json", blob)
        dest.write_bytes(f"{REPORTS}/latest.html", page)
    return {"html": f"{REPORTS}/{run_id}.html", "json": f"{REPORTS}/{run_id}.json"}


def load_report(dest, run_id: str | None = None) -> dict:
    """The stored report of run_id (default: the latest run)."""
    rel = f"{REPORTS}/{_check_run_id(run_id or 'latest')}.json"
    if not dest.exists(rel):
        folder = dest.path(REPORTS)
        names = dest.fs.ls(folder, detail=False) if dest.fs.exists(folder) else []
        ids = sorted(n[:-5] for n in map(posixpath.basename, names) if n.endswith(".json") and n != "latest.json")
        raise FileNotFoundError(f"no report at {dest.display(rel)}; runs with a report: {', '.join(ids) or 'none'}")
    return json.loads(dest.read_bytes(rel))
