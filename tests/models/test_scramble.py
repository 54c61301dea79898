import numpy as np
import pytest
from skimage import data

from faceveil.models.detectors import DetectorSettings, create_detector
from faceveil.models.scramble import scramble, unscramble


@pytest.mark.parametrize("shape,block", [((64, 48, 3), 8), ((67, 53, 3), 8), ((5, 7, 3), 8), ((120, 96, 3), 12)])
def test_inverts_exactly(shape, block):
    rng = np.random.default_rng(0)
    region = rng.integers(0, 256, shape, dtype=np.uint8)
    key = bytes(range(32))
    s = scramble(region, key, block)
    assert s.shape == region.shape and s.dtype == np.uint8
    assert not np.array_equal(s, region)
    assert np.array_equal(unscramble(s, key, block), region)
    wrong = unscramble(s, bytes(range(1, 33)), block)
    assert np.mean(wrong == region) < 0.05


def test_scrambled_face_is_not_a_face():
    img = np.ascontiguousarray(data.astronaut())
    det = create_detector("centerface", DetectorSettings(threshold=0.3))
    assert len(det.detect(img)) >= 1
    out = img.copy()
    out[30:200, 150:300] = scramble(img[30:200, 150:300], b"k" * 32)
    found = det.detect(out)
    inside = [b for b in found.boxes if b[0] < 300 and b[2] > 150 and b[1] < 200 and b[3] > 30]
    assert not inside
    # pixel statistics carry nothing of the face: near-uniform histogram, no correlation with the original
    region = out[30:200, 150:300].astype(float)
    assert abs(np.corrcoef(region.ravel(), img[30:200, 150:300].astype(float).ravel())[0, 1]) < 0.05


def test_every_untracked_face_has_its_own_keystream(tmp_path):
    """Without tracking all faces share track -1 (one data key): two identical faces in one frame must
    still scramble differently (a shared keystream would let one cancel the other), and each inverts."""
    from faceveil.models.anonymizers import create_anonymizer
    from faceveil.models.detections import Detections
    from faceveil.storage.keys import MasterKey, VaultLock
    from faceveil.storage.vault import VaultWriter
    from faceveil.pipeline.protect import protect_frame
    from faceveil.models.scramble import region_key

    face = np.ascontiguousarray(data.astronaut()[20:180, 160:290])
    frame = np.zeros((200, 400, 3), np.uint8)
    frame[20:180, 10:140] = face
    frame[20:180, 210:340] = face
    dets = Detections(np.array([[40, 50, 110, 150], [240, 50, 310, 150]], np.float32), np.ones(2))  # track ids -1
    anon = create_anonymizer("scramble")
    vault = VaultWriter(VaultLock.of(MasterKey.generate()), "m", str(tmp_path))
    out = frame.copy()
    assert not protect_frame(anon, out, dets, 7, "m", vault)
    (a, b) = anon.regions(dets, 400, 200)
    assert np.array_equal(frame[a[1] : a[3], a[0] : a[2]], frame[b[1] : b[3], b[0] : b[2]])  # the same face twice
    sa, sb = out[a[1] : a[3], a[0] : a[2]], out[b[1] : b[3], b[0] : b[2]]
    assert np.mean(sa == sb) < 0.05, "two faces of one frame got the same keystream"
    for r in (b, a):  # each face inverts with its own region key (the reverse of the order they were scrambled in)
        key = region_key(vault.data_key(-1), "m", 7, -1, tuple(int(v) for v in r))
        out[r[1] : r[3], r[0] : r[2]] = unscramble(out[r[1] : r[3], r[0] : r[2]], key)
    assert np.array_equal(out, frame)
    vault.discard()
