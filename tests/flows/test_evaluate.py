"""`run_evaluate` end to end on a tiny labelled set built from photos that ship in packages
(skimage's astronaut, matplotlib's Grace Hopper; each with a second, altered photo): two methods
through the real flow, the run's checks, the attacker's gallery search and MLflow."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceveil.flows.evaluate import run_evaluate
from faceveil.validation.evaluation_table import format_table


def _second_photo(rgb: np.ndarray) -> np.ndarray:
    """Another "photo" of the same person: mirrored, 80 % size on a grey canvas, darker."""
    h, w = rgb.shape[:2]
    small = np.asarray(Image.fromarray(rgb[:, ::-1]).resize((int(w * 0.8), int(h * 0.8)), Image.BILINEAR))
    canvas = np.full_like(rgb, 110)
    canvas[h // 10 : h // 10 + small.shape[0], w // 20 : w // 20 + small.shape[1]] = small
    return (255 * (canvas / 255.0) ** 1.3).astype(np.uint8)


def build_labelled_set(root: Path) -> Path:
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(f).convert("RGB"))
    for name, rgb in (("astronaut", skimage.data.astronaut()), ("hopper", hopper)):
        (root / "faces" / name).mkdir(parents=True)
        Image.fromarray(rgb).save(root / "faces" / name / "1.jpg", quality=92)
        Image.fromarray(_second_photo(rgb)).save(root / "faces" / name / "2.jpg", quality=92)
    return root


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, prefect_server):
    data = build_labelled_set(tmp_path_factory.mktemp("eval_data"))
    out = tmp_path_factory.mktemp("eval_out")
    return run_evaluate(str(data), str(out), ["solid", "blur"], workers=1), out


@pytest.mark.slow
def test_evaluate_compares_methods_on_labelled_photos(evaluated):
    result, out = evaluated
    solid, blur = result["methods"]["solid"], result["methods"]["blur"]
    assert result["n_identities"] == 2 and result["n_probe_faces"] == 4
    assert 0 < result["threshold"] < 1
    # the attack works on the photos as they are, so a 0 after anonymization means something
    assert result["attack_on_originals"] > 0
    for f in (solid, blur):
        assert f["ok"] == 4 and f["failed"] == 0 and f["frames"] == 4 and f["fps"] > 0
        assert f["leak"]["frames_checked"] == 4 and f["leak"]["faces_anonymized"] >= 4
        assert f["reid_run"]["faces_checked"] >= 4
        assert f["reid_attack"]["probes"] == 4
        a = f["reid_attack"]
        assert a["rate"] == max(a["direct"], a["parrot"]) and a["either"] >= a["rate"]
        assert a["direct"] <= a["direct_answered"] <= 1 and a["parrot"] <= a["parrot_answered"] <= 1
        assert a["probe_boxes"]["at_manifest_box"] == 4  # every labelled face was one the flow anonymized
        assert 0 <= f["utility"]["background_ssim"] <= 1 and f["utility"]["background_psnr"] > 30
        assert (out / m_dir(result, f)).is_dir()
    assert solid["leak"]["rate"] == 0 and solid["reid_run"]["rate"] == 0 and solid["reid_attack"]["direct"] == 0
    assert solid["utility"]["face_ssim"] < blur["utility"]["face_ssim"]
    # one MLflow run per method, with the table as an artifact
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=result["mlflow"]["tracking_uri"])
    for m, f in result["methods"].items():
        run = client.get_run(f["mlflow_run_id"])
        assert run.data.tags["faceveil.flow"] == "evaluate" and run.data.params["settings.method"] == m
        assert math.isclose(run.data.metrics["privacy.leak_rate"], f["leak"]["rate"])
        assert "evaluate.md" in [a.path for a in client.list_artifacts(f["mlflow_run_id"])]
    saved = json.loads((out / "evaluate.json").read_text())
    assert set(saved["methods"]) == {"solid", "blur"}


def m_dir(result, figures) -> str:
    return next(m for m, f in result["methods"].items() if f is figures)


@pytest.mark.slow
def test_table_has_a_row_per_method(evaluated):
    result, _ = evaluated
    table = format_table(result)
    print(table)
    lines = table.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("method"))
    for col in ("leak %", "reid run %", "bg PSNR dB", "bg SSIM", "face SSIM", "fps"):
        assert col in lines[head]
    assert set(lines[head + 1]) == {"-", " "}
    assert [lines[head + 2].split()[0], lines[head + 3].split()[0]] == ["solid", "blur"]
    assert len(lines[head]) == len(lines[head + 1]) == len(lines[head + 2].rstrip()) == len(lines[head + 3].rstrip())
    assert lines[head + 2].split()[-1] == f"{result['methods']['solid']['fps']:.1f}"  # fps is the last column
    assert f"{result['threshold']:.3f}" in table and "chance 1/2" in table


def test_bad_input_is_refused_before_any_run(tmp_path):
    data = build_labelled_set(tmp_path / "data")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="unknown anonymization method 'pixelate'.*blur.*mosaic.*scramble.*solid"):
        run_evaluate(str(data), str(out), ["solid", "pixelate"])
    assert not out.exists()
    with pytest.raises(ValueError, match="outside the evaluation data"):
        run_evaluate(str(data), str(data / "out"), ["solid"])
    assert not (data / "out").exists()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        run_evaluate(str(tmp_path / "nowhere"), str(out), ["solid"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*no images or videos"):
        run_evaluate(str(tmp_path / "empty"), str(out), ["solid"])
    assert not out.exists()


def test_method_specs_with_a_scope(tmp_path):
    from faceveil.flows.evaluate import check_methods, method_config, method_folder

    assert check_methods(["solid", "solid@head", "mosaic@face", "solid@head"]) == ["solid", "solid@head", "mosaic"]
    c = method_config("mosaic@head", str(tmp_path), str(tmp_path / "out"), 1, 0.5)
    assert c.masking.method == "mosaic" and c.masking.scope == "head" and c.dest.endswith("/out/mosaic-head")
    assert method_folder("solid") == "solid"
    with pytest.raises(ValueError, match="unknown scope 'hair'"):
        check_methods(["solid@hair"])
    with pytest.raises(ValueError, match="scramble@head: a scope works with the masking methods"):
        check_methods(["scramble@head"])
