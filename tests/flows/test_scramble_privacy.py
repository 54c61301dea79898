"""Without the key, scrambled faces are neither found by the detector nor recognisable: the flow's
`scramble` output over ../shared/data/faces, checked with the detector at 0.3 and the identity
embedder (the original face's box, since the scrambled one is not found)."""

import shutil

import numpy as np
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.models.detectors import DetectorSettings, create_detector
from faceveil.models.embedders import create_embedder
from faceveil.storage.keys import MasterKey, VaultLock
from faceveil.storage.media import read_image

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]  # flows over ../shared/data


@pytest.fixture(scope="module")
def scrambled(shared, tmp_path_factory, prefect_server):
    src = tmp_path_factory.mktemp("faces_src")
    photos = sorted((shared / "faces").glob("*/*.jpg"))
    assert len(photos) >= 100
    for p in photos:
        (src / p.parent.name).mkdir(exist_ok=True)
        shutil.copy(p, src / p.parent.name / p.name)
    dest = tmp_path_factory.mktemp("faces_scrambled")
    key = MasterKey.generate()
    summary = run_anonymize(
        AnonymizeConfig.of(
            src=str(src), dest=str(dest), method="scramble", workers=2, vault_lock=VaultLock.of(key), index=False
        ),
        key,
    )
    assert summary["failed"] == 0 and summary["ok"] == len(photos)
    return src, dest, [p.relative_to(shared / "faces").as_posix() for p in photos]


def test_scrambled_faces_are_not_found_or_recognised(scrambled, figures):
    src, dest, rels = scrambled
    det = create_detector("centerface", DetectorSettings(threshold=0.3))
    emb = create_embedder("dlib-resnet")
    n_in = n_out = 0
    originals, scrambled_vecs, ids = [], [], []
    for rel in rels:
        a, _ = read_image(str(src / rel))
        b, _ = read_image(str(dest / rel))
        da, db = det.detect(a), det.detect(b)
        n_in, n_out = n_in + len(da), n_out + len(db)
        if not len(da):
            continue
        best = da[[int(np.argmax(da.scores))]]
        originals.append(emb.embed(a, best)[0])
        scrambled_vecs.append(emb.embed(b, best)[0])
        ids.append(rel.split("/")[0])
    o, s, ids = np.array(originals), np.array(scrambled_vecs), np.array(ids)
    # an attacker holds other photos of people (a gallery), never the very photo that was scrambled
    same_photo = np.eye(len(o), dtype=bool)
    same_id = (ids[:, None] == ids[None, :]) & ~same_photo
    other_id = ids[:, None] != ids[None, :]
    attack, clean = s @ o.T, o @ o.T
    genuine = np.array([attack[i][same_id[i]].mean() for i in range(len(o)) if same_id[i].any()])
    impostor = np.array([attack[i][other_id[i]].mean() for i in range(len(o)) if same_id[i].any()])
    masked = np.where(same_photo, -np.inf, attack)
    top1 = float((ids[masked.argmax(1)] == ids).mean())  # nearest gallery photo has the right identity
    clean_top1 = float((ids[np.where(same_photo, -np.inf, clean).argmax(1)] == ids).mean())
    chance = float(np.mean([same_id[i].sum() / (len(o) - 1) for i in range(len(o))]))
    matched = float((np.where(same_id, attack, -1) >= emb.same_person_threshold).any(1).mean())
    figures.append(
        f"scramble on faces/ ({len(rels)} photos, {len(set(ids))} identities): detector at 0.3 finds "
        f"{n_out} faces in the outputs of {n_in} in the inputs ({100 * n_out / n_in:.2f}%, target <= 1%); "
        f"scrambled face vs other photos of the same person: cosine {genuine.mean():.3f}, vs other "
        f"identities {impostor.mean():.3f}; rank-1 identification {top1:.3f} (chance {chance:.3f}, "
        f"unscrambled {clean_top1:.3f}); matched at {emb.same_person_threshold}: {100 * matched:.1f}%"
    )
    assert n_in >= 100 and n_out <= 0.01 * n_in
    assert genuine.mean() <= impostor.mean() + 0.005
    assert top1 <= 2 * chance and clean_top1 >= 0.9
    assert matched <= 0.01
