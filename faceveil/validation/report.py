"""The self-contained HTML audit report of a run (plots inline, every audit string escaped),
and its storage beside the JSON audit under the state root's `reports/`. `render_html` is longer than 60
lines (and the module just over 300 lines): it is the page's one template, section after section, which reads best in one piece."""
from __future__ import annotations

import base64
import html
import io
import json
import math
import posixpath
import re


REPORTS = "reports"  # in the state root
SECTIONS = [("summary", "Summary"), ("contracts", "Data contracts"), ("privacy", "Privacy"), ("utility", "Utility"),
            ("coverage", "Coverage"), ("pulse", "Pulse (rPPG)"), ("media", "Media"), ("models", "Models"), ("settings", "Settings"),
            ("keys", "Keys"), ("review", "Review (exemption log)"), ("access-log", "Access log"), ("thumbnails", "Thumbnails"), ("mlflow", "MLflow")]
_RUN_ID = re.compile(r"[A-Za-z0-9T_-]{1,128}")
_NA = '<p class="na">not measured</p>'
_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f2f2f2}tr.fail td,p.fail{background:#fde2e2}code{font-size:12px;word-break:break-all}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:bold}
.ok{background:#2e7d32}.bad{background:#c62828}.warn{background:#ef6c00}.na{color:#888;font-style:italic}
img.plot{max-width:100%;border:1px solid #eee}figure{display:inline-block;margin:.5em}
figure img{max-width:240px;max-height:240px;border:1px solid #ccc}figcaption{font-size:12px;max-width:240px;
word-break:break-all}"""


class _Html(str):
    """Markup that is already escaped."""


def _num(v) -> float | None:
    """A finite-or-infinite float, or None for missing / NaN / non-numbers."""
    if v in ("inf", "-inf"):  # how the stored JSON holds infinities
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(v) else float(v)


def _get(d, *keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else f"{v:.4g}"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str, sort_keys=True)
    return str(v)


def _e(v) -> str:
    return v if isinstance(v, _Html) else html.escape(_fmt(v), quote=True)


def _table(headers, rows, fails=()) -> str:
    if not rows:
        return _NA
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(f'<tr{" class=fail" if i in fails else ""}>' + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>"
                   for i, r in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def _kv(d) -> str:
    return _table(["key", "value"], [[k, v] for k, v in d.items()]) if isinstance(d, dict) and d else _NA


def _code(v) -> _Html:
    return _Html(f"<code>{_e(v)}</code>")


def _badge(status) -> _Html:
    cls = {"ok": "ok", "success": "ok", "true": "ok", "failed": "bad", "leaked": "bad", "error": "bad", "false": "bad"}
    return _Html(f'<span class="badge {cls.get(_fmt(status).lower(), "warn")}">{_e(status)}</span>')


def _img(png: bytes | None, alt: str) -> str:
    return _NA if not png else f'<img class="plot" alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _covered(intervals) -> int:
    """Frames in a list of half-open [start, stop) intervals, overlaps counted once."""
    total, end = 0, -math.inf
    for a, b in sorted((int(a), int(b)) for a, b in intervals or []):
        if b > max(a, end):
            total += b - max(a, end)
            end = b
    return total


def _videos(audit: dict) -> list[tuple[str, dict]]:
    kinds = {m.get("path"): m.get("kind") for m in audit.get("media") or []}
    return [(p, c) for p, c in (audit.get("coverage") or {}).items()
            if isinstance(c, dict) and kinds.get(p) != "image" and (c.get("n_frames") or 0) > 1]


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _rows(ax, labels) -> None:
    ax.set_yticks(range(len(labels)), [p if len(p) <= 40 else "…" + p[-39:] for p in labels], fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)


def plots(audit: dict, max_rows: int = 40) -> dict[str, bytes]:
    """PNG bytes per plot name ('coverage', 'privacy'), only for plots that have data."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    out = {}
    videos = _videos(audit)[:max_rows]
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
        fig.legend(handles=[Patch(color=c, label=k) for k, c in colours.items()], loc="outside upper center",
                   ncols=4, fontsize=8, frameon=False, title="Face coverage per video", title_fontsize=10)
        out["coverage"] = _png(fig)
    media = [m for m in audit.get("media") or [] if any(_num(m.get(f"{k}_rate")) is not None for k in ("leak", "reid"))]
    if media:
        media = media[:max_rows]
        fig = Figure(figsize=(10, 1.5 + 0.45 * len(media)), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        rates = {k: [_num(m.get(f"{k}_rate")) for m in media] for k in ("leak", "reid")}
        top = max([1.0] + [v for vs in rates.values() for v in vs if v is not None and math.isfinite(v)]) * 1.1
        for off, key, colour, name, what in ((-0.2, "leak", "#1565c0", "leak rate", "unmasked faces the leak gate confirmed"),
                                             (0.2, "reid", "#8e24aa", "re-id rate", "original/anonymized cosine")):
            thr = _num(_get(audit, "privacy", key, "threshold"))
            for y, v in enumerate(rates[key]):
                if v is not None:
                    ax.text(min(v, top), y + off, f" {_fmt(v)}", va="center", fontsize=7)
            ax.barh([y + off for y in range(len(media))], [math.nan if v is None else min(v, top) for v in rates[key]],
                    0.4, color=colour, label=f"{name} ({what} ≥ {_fmt(thr)})")
        _rows(ax, [m.get("path") or "?" for m in media])
        ax.set_xlim(0, top)
        ax.set_xlabel("rate")
        fig.legend(loc="outside upper center", ncols=2, fontsize=8, frameon=False,
                   title="Leak and re-identification rate per media", title_fontsize=10)
        out["privacy"] = _png(fig)
    return out


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>\n{body}\n</section>'


def _gate(gate) -> str:
    """A warning when the run's leak gate was off (nothing it let through was checked for faces)."""
    if not isinstance(gate, dict) or gate.get("on", True):
        return ""
    return f'<p class="fail" id="gate-off">LEAK GATE OFF: {_e(gate.get("off_because"))}</p>'


def render_html(audit: dict) -> str:
    """One self-contained HTML page for an audit dict (no scripts, no external URLs)."""
    a, figs, media = audit, plots(audit), audit.get("media") or []
    counts = a.get("counts") or {}
    s = {"summary": _kv({"run id": a.get("run_id"), "flow": a.get("flow"), "status": _badge(a.get("status")),
                         "started": a.get("started_at"), "finished": a.get("finished_at"), "seconds": a.get("seconds"),
                         "faceveil version": a.get("faceveil_version"), "code version": a.get("code_version"),
                         "source": a.get("src"), "destination": a.get("dest")})
                    + _gate(a.get("leak_gate"))
                    + ("<h3>Counts</h3>" + _table(list(counts), [list(counts.values())]) if counts else "")}
    c = a.get("contracts")
    if isinstance(c, dict):
        res = sorted(c.get("results") or [], key=lambda r: bool(r.get("success")))
        s["contracts"] = f"<p>overall: {_badge('ok' if c.get('success') else 'failed')}</p>" + _table(
            ["table", "expectation", "column", "success", "unexpected"],
            [[r.get("table"), r.get("expectation"), r.get("column"), r.get("success"), r.get("unexpected")]
             for r in res], fails={i for i, r in enumerate(res) if not r.get("success")})
    p = a.get("privacy")
    if isinstance(p, dict):
        parts = [f"<h3>{_e(k.replace('_', ' '))}</h3>" + (_kv(v) if isinstance(v, dict) else
                                                          _NA if v is None else f"<p>{_e(v)}</p>")
                 for k, v in p.items()]
        rows = [m for m in media if any(_num(m.get(f"{k}_rate")) is not None for k in ("leak", "reid"))]
        fails = {i for i, m in enumerate(rows) if any((_num(m.get(f"{k}_rate")) or 0) > 0 for k in ("leak", "reid"))}
        parts.append("<h3>per media</h3>" + _table(
            ["path", "leak rate", "leaked faces", "faces checked", "leak rate 95% bound", "re-id rate", "re-id checked"],
            [[m.get("path"), m.get("leak_rate"), m.get("leak_faces"), m.get("leak_faces_checked"),
              m.get("leak_upper_95"), m.get("reid_rate"), m.get("reid_checked")]
             for m in rows], fails) + _img(figs.get("privacy"), "privacy plot"))
        s["privacy"] = "".join(parts)
    if isinstance(a.get("utility"), dict):
        rows = [m for m in media if any(m.get(k) is not None for k in ("background_psnr", "background_ssim", "face_ssim"))]
        s["utility"] = _kv(a["utility"]) + "<h3>per media</h3>" + _table(
            ["path", "background PSNR (dB)", "background SSIM", "face SSIM"],
            [[m.get("path"), m.get("background_psnr"), m.get("background_ssim"), m.get("face_ssim")] for m in rows])
    videos = _videos(a)
    if videos:
        rows = []
        for path, cv in videos:
            n, d, f, r = cv.get("n_frames"), *(_covered(cv.get(k)) for k in ("detected", "filled", "redacted"))
            rows.append([path, n, cv.get("fps"), d, f, r,
                         n - _covered([*(cv.get("detected") or []), *(cv.get("filled") or []),
                                       *(cv.get("redacted") or [])])])
        s["coverage"] = _img(figs.get("coverage"), "coverage plot") + _table(
            ["video", "frames", "fps", "detected", "filled", "redacted", "without faces"], rows)
    if a.get("pulse"):
        from faceveil.validation.pulse_report import pulse_html

        s["pulse"] = pulse_html(a["pulse"])
    if media:
        s["media"] = _table(
            ["path", "kind", "method", "status", "reason", "input sha256", "output path", "output sha256", "frames", "faces",
             "tracks", "audio in", "audio out"],
            [[m.get("path"), m.get("kind"), m.get("method"), _badge(m.get("status")), m.get("reason"), _code(m.get("input_sha256")),
              m.get("output_path"), _code(m.get("output_sha256")), m.get("frames"), m.get("faces"), m.get("tracks"),
              m.get("has_audio_in"), m.get("has_audio_out")] for m in media],
            {i for i, m in enumerate(media) if m.get("status") not in ("ok", "already_done")})
    for key, title in (("failures", "Failures"), ("not_media", "Not media")):
        if a.get(key):
            s["media"] = s.get("media", "") + f"<h3>{title}</h3>" + _table(
                ["path", "reason"], [[x.get("path"), x.get("reason")] for x in a[key]])
    if a.get("models"):
        s["models"] = _table(["name", "role", "weights", "licence"],
                             [[m.get("name"), m.get("role"), _code(m.get("weights")), m.get("licence")] for m in a["models"]])
    s["settings"] = _kv(a.get("settings"))
    if isinstance(a.get("keys"), dict):  # fingerprints and flags only, never key material
        s["keys"] = _kv({k: _code(v) if "fingerprint" in k else v for k, v in a["keys"].items()
                         if "fingerprint" in k or isinstance(v, bool) or v is None})
    if a.get("review"):  # what reviewers did after the gate (faceveil review): every action, from the access log
        s["review"] = _table(["seq", "time", "actor", "action", "targets", "reason", "outcome"],
                             [[r.get("seq"), r.get("time"), r.get("actor"), r.get("action"),
                               ", ".join(map(str, r.get("targets") or [])), r.get("reason"), r.get("outcome")]
                              for r in a["review"]], {i for i, r in enumerate(a["review"]) if r.get("outcome") != "done"})
    if a.get("access_log"):
        s["access-log"] = _table(
            ["seq", "time", "actor", "action", "reason", "matched", "key fingerprint"],
            [[r.get("seq"), r.get("time"), r.get("actor"), r.get("action"), r.get("reason"),
              ", ".join(map(str, r.get("matched") or [])), _code(r.get("key_fingerprint"))] for r in a["access_log"]])
    thumbs = []
    for t in a.get("thumbnails") or []:
        try:
            raw = base64.b64decode(t.get("png_base64") or "", validate=True)
        except (ValueError, TypeError):
            continue
        mime = "png" if raw.startswith(b"\x89PNG") else "jpeg" if raw.startswith(b"\xff\xd8") else None
        if mime:
            thumbs.append(f'<figure><img alt="{_e(t.get("path"))}" src="data:image/{mime};base64,'
                          f'{base64.b64encode(raw).decode()}"><figcaption>{_e(t.get("path"))} '
                          f'frame {_e(t.get("frame"))}</figcaption></figure>')
    if thumbs:
        s["thumbnails"] = "".join(thumbs)
    if isinstance(a.get("mlflow"), dict):
        s["mlflow"] = _kv({k.replace("_", " "): a["mlflow"][k] for k in ("tracking_uri", "experiment", "run_id", "artifacts")
                           if k in a["mlflow"]})
    body = "\n".join(_section(sid, title, s.get(sid) or _NA) for sid, title in SECTIONS)
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f"<title>faceveil run {_e(a.get('run_id'))}</title><style>{_CSS}</style></head>\n<body>"
            f"<h1>faceveil run {_e(a.get('run_id'))} {_badge(a.get('status'))}</h1>\n{body}\n</body></html>\n")


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


def write_report(dest, audit: dict, latest: bool = True) -> dict[str, str]:
    """Writes the audit JSON and HTML of the run (and latest.json / latest.html) under the state root `dest`."""
    run_id = _check_run_id(audit.get("run_id"))
    audit = strict_json(audit)
    blob = json.dumps(audit, indent=2, default=str, sort_keys=True, allow_nan=False).encode()
    dest.write_bytes(f"{REPORTS}/{run_id}.json", blob)  # stored even if rendering fails
    page = render_html(audit).encode()
    dest.write_bytes(f"{REPORTS}/{run_id}.html", page)
    if latest:
        dest.write_bytes(f"{REPORTS}/latest.json", blob)
        dest.write_bytes(f"{REPORTS}/latest.html", page)
    return {"html": f"{REPORTS}/{run_id}.html", "json": f"{REPORTS}/{run_id}.json"}


def load_audit(dest, run_id: str | None = None) -> dict:
    """The stored audit of run_id (default: the latest run)."""
    rel = f"{REPORTS}/{_check_run_id(run_id or 'latest')}.json"
    if not dest.exists(rel):
        folder = dest.path(REPORTS)
        names = dest.fs.ls(folder, detail=False) if dest.fs.exists(folder) else []
        ids = sorted(n[:-5] for n in map(posixpath.basename, names) if n.endswith(".json") and n != "latest.json")
        raise FileNotFoundError(f"no audit report at {dest.display(rel)}; "
                                f"runs with a report: {', '.join(ids) or 'none'}")
    return json.loads(dest.read_bytes(rel))
