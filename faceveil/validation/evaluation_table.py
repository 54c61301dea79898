"""`faceveil evaluate`'s results as an aligned text table (one row per method, then notes)."""

from __future__ import annotations

import math

from faceveil.validation.privacy import LEAK_THRESHOLD

COLUMNS = ["method", "leak %", "reid %", "parrot reid %", "reid run %", "bg PSNR dB", "bg SSIM", "face SSIM", "fps"]


def _num(v, fmt: str, scale: float = 1.0) -> str:
    """A number as text: '—' when missing or NaN, 'inf' when infinite."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return "—"
    return ("inf" if v > 0 else "-inf") if math.isinf(v) else format(scale * v, fmt)


def _pct(v) -> str:
    return _num(v, ".1f", 100.0)


def _row(method: str, f: dict) -> list[str]:
    u, a = f["utility"], f.get("reid_attack") or {}
    return [
        method,
        _pct(f["leak"]["rate"]),
        _pct(a.get("direct")),
        _pct(a.get("parrot")),
        _pct(f["reid_run"]["rate"]),
        _num(u["background_psnr"], ".1f"),
        _num(u["background_ssim"], ".3f"),
        _num(u["face_ssim"], ".3f"),
        _num(f["fps"], ".1f"),
    ]


def _header(result: dict) -> list[str]:
    n_img, n_vid = result.get("n_images", 0), result.get("n_videos", 0)
    out = [
        f"data: {result['data']} ({n_img} images, {n_vid} videos); re-identification threshold: cosine >= "
        f"{result['threshold']:.3f} ({result.get('embedder', 'embedder')}, {result.get('threshold_source', 'given')}); "
        f"leak: faces found at detector score >= {LEAK_THRESHOLD} in the outputs, per face anonymized",
        "reid: an attacker's rank-1 search of each anonymized face among the original labelled photos (its own left "
        "out), right identity at or above the threshold; parrot: the same against a gallery anonymized the same way "
        "(context such as hair, clothes and framing survives any face mask); reid run: the run's own check "
        "(still found as a face and matching its original)",
    ]
    if result.get("n_probe_faces"):
        out.append(
            f"attack: {result['n_probe_faces']} labelled faces of {result['n_identities']} identities; "
            f"rank-1 chance 1/{result['n_identities']} = {100 * result['chance_rank1']:.1f} %; the same attack "
            f"on the unanonymized photos: {_pct(result.get('attack_on_originals'))} %"
        )
    return out


def _notes(method: str, f: dict) -> list[str]:
    notes = []
    a = f.get("reid_attack")
    if a:
        notes.append(
            f"{method}: attack direct {_pct(a['direct'])} % (rank-1 at or above the threshold for "
            f"{_pct(a['direct_answered'])} % of probes, right or wrong), parrot {_pct(a['parrot'])} % "
            f"({_pct(a['parrot_answered'])} %)"
            + (f"; parrot gallery scrambled with the {a['parrot_keys']}" if a.get("parrot_keys") else "")
        )
    split = [
        f"{k[5:]} {_pct(f[k]['rate'])} % ({f[k]['faces_found']}/{f[k]['faces_anonymized']})"
        for k in ("leak_images", "leak_videos")
        if k in f
    ]
    leak = f["leak"]
    notes.append(
        f"{method}: leak {leak['faces_found']} faces found / {leak['faces_anonymized']} anonymized in "
        f"{leak['frames_checked']} checked frames"
        + (f" ({', '.join(split)})" if split else "")
        + f"; run re-id check on {f['reid_run']['faces_checked']} faces; {f['frames']} frames in "
        f"{f['seconds']:.1f} s" + (f"; {f['failed']} media FAILED" if f.get("failed") else "")
    )
    return notes


def format_table(result: dict) -> str:
    """An aligned text table, one row per method, with the threshold, chance level and notes."""
    rows = [_row(m, f) for m, f in result["methods"].items()]
    width = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]

    def line(r):
        return "  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(r, width)))

    out = _header(result) + [line(COLUMNS), line(["-" * w for w in width])] + [line(r) for r in rows]
    notes = [n for m, f in result["methods"].items() for n in _notes(m, f)]
    return "\n".join(out + ([""] + notes if notes else []))
