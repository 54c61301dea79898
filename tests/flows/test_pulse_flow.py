"""`faceveil pulse` end to end through the CLI (the real flow: Prefect, Dask, the pulse task, the
encoder) on a 10 s face clip with a known 72 bpm pulse in its head's skin (tests/pulseclip.py), lossless in and out:
target:100 makes CHROM, GREEN and PhysNet (not optimised through) read 100 +- 3, scrub leaves no
peak above 3 dB, PSNR >= 50 dB, and no pixel outside the pipeline's own skin masks changes; the
media row says method keep and ok (not a leak), the report has the pulse section. Plus the
settings' refusals (no data needed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.validation.image_quality import masked_psnr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pulseclip import Clip, make_clip, pipeline_masks, read_video, write_video  # noqa: E402
from private import private  # noqa: E402

PHOTO = "faces/deepface_id29/2.jpg"


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "faceveil.cli", *args], env=dict(os.environ), capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def runs(shared, tmp_path_factory, prefect_server):
    root = tmp_path_factory.mktemp("pulse")
    clip = make_clip(str(shared / PHOTO), bpm=72.0, seconds=10.0, amp=0.5, where="skin")
    (root / "src").mkdir()
    write_video(str(root / "src" / "face.mkv"), clip.frames, clip.fps)
    out = {}
    for name, extra in (("target", ["--pulse", "target:100"]), ("scrub", [])):  # `faceveil pulse` scrubs by default
        p = _cli(
            "pulse", str(root / "src"), str(root / name), "--lossless", "--workers", "1", "--quiet", "--json", *extra
        )
        assert p.returncode == 0, p.stderr[-3000:]
        out[name] = root / name
    return clip, out


def _readings(clip: Clip, frames) -> dict:
    from faceveil.models.rppg import create_estimator

    out = {n: create_estimator(n).read_trace(clip.trace(frames), clip.fps) for n in ("pos", "chrom", "green")}
    out["physnet"] = create_estimator("physnet").read_clip(clip.crops(frames), clip.fps)
    return out


@pytest.mark.slow
@pytest.mark.shared_data
def test_target_100(runs, figures):
    clip, dest = runs
    out = read_video(str(dest["target"] / "face.mkv"))
    before, after = _readings(clip, clip.frames), _readings(clip, out)
    figures.append(
        "faceveil pulse --pulse target:100: "
        + ", ".join(f"{n} {before[n].bpm:.1f} -> {after[n].bpm:.1f} bpm ({after[n].snr_db:.1f} dB)" for n in after)
        + f"; PSNR {masked_psnr(clip.frames, out):.1f} dB"
    )
    for n in ("pos", "chrom", "green"):
        assert abs(before[n].bpm - 72) <= 3, (n, before[n])
    for n, r in after.items():
        assert abs(r.bpm - 100) <= 3, (n, r)
    assert masked_psnr(clip.frames, out) >= 50
    changed = (out != clip.frames).any(-1)
    assert changed.any() and not (changed & ~pipeline_masks(private(dest["target"]), clip.frames)).any()


@pytest.mark.slow
@pytest.mark.shared_data
def test_scrub(runs, figures):
    clip, dest = runs
    out = read_video(str(dest["scrub"] / "face.mkv"))
    after = _readings(clip, out)
    figures.append(
        "faceveil pulse (scrub): "
        + ", ".join(f"{n} peak SNR {r.snr_db:.1f} dB" for n, r in after.items())
        + f"; PSNR {masked_psnr(clip.frames, out):.1f} dB"
    )
    for n, r in after.items():
        assert r.snr_db <= 3, (n, r)
    assert masked_psnr(clip.frames, out) >= 50
    changed = (out != clip.frames).any(-1)
    assert changed.any() and not (changed & ~pipeline_masks(private(dest["scrub"]), clip.frames)).any()


@pytest.mark.slow
@pytest.mark.shared_data
def test_keep_is_recorded_not_a_leak_and_the_report_has_the_pulse(runs):
    _, dest = runs
    media = pq.read_table(private(dest["target"]) / "media").to_pandas().iloc[0]
    assert media.status == "ok" and media.method == "keep" and media.output_path == "face.mkv"
    assert any("faces kept visible" in n for n in media.notes) and any("pulse target:100" in n for n in media.notes)
    report = json.loads(next((private(dest["target"]) / "reports").glob("*.json")).read_text())
    (row,) = report["pulse"]
    assert row["spec"] == "target:100" and row["optimised"] == "pos" and row["measured"]
    assert abs(row["before"]["chrom"]["bpm"] - 72) <= 3 and abs(row["after"]["chrom"]["bpm"] - 100) <= 3
    assert row["psnr_db"] >= 50
    html = next((private(dest["target"]) / "reports").glob("*.html")).read_text()
    assert "Pulse (rPPG)" in html and "chrom before -&gt; after" in html


def test_pulse_settings_are_checked_and_hashed():
    with pytest.raises(ValueError, match="--pulse edits visible skin"):
        AnonymizeConfig.of(src="a", dest="b", method="mosaic", pulse="scrub")
    with pytest.raises(ValueError, match="nothing to seal"):
        AnonymizeConfig.of(src="a", dest="b", method="keep", reversible=True, vault_lock=object())
    with pytest.raises(ValueError, match="target:BPM"):
        AnonymizeConfig.of(src="a", dest="b", method="keep", pulse="slower")
    keep = AnonymizeConfig.of(src="a", dest="b", method="keep", pulse="target:100.0")
    assert keep.masking.pulse == "target:100" and keep.run_check_every_s == 0 and not keep.settings.second_look
    assert (keep.checks.check_every_s, keep.detection.second_look) == (
        4.0,
        0.5,
    )  # the fields stay as given (defaults here)
    assert keep.settings.pulse == "target:100"
    plain = AnonymizeConfig.of(src="a", dest="b")
    assert "pulse" not in plain.output_settings()  # runs without it keep their hash
    assert (
        keep.output_settings_hash()
        != AnonymizeConfig.of(src="a", dest="b", method="keep", pulse="scrub").output_settings_hash()
    )


def test_cli_pulse_shortcut_and_refusals(tmp_path, capsys):
    from faceveil.cli import main

    (tmp_path / "src").mkdir()
    assert main(["pulse", str(tmp_path / "src"), str(tmp_path / "out"), "--dry-run"]) == 0
    assert "method keep, pulse scrub" in capsys.readouterr().out
    assert (
        main(
            [
                "anonymize",
                str(tmp_path / "src"),
                str(tmp_path / "out"),
                "--method",
                "keep",
                "--pulse",
                "target:90",
                "--dry-run",
            ]
        )
        == 0
    )
    assert "method keep, pulse target:90" in capsys.readouterr().out
    assert main(["anonymize", str(tmp_path / "src"), str(tmp_path / "out"), "--pulse", "scrub", "--dry-run"]) == 2
    assert "use it with --method keep or replace, not mosaic" in capsys.readouterr().err
    assert main(["pulse", str(tmp_path / "src"), str(tmp_path / "out"), "--pulse", "target:300", "--dry-run"]) == 2
    assert "42-240 bpm" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
