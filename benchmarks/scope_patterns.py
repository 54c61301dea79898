"""The parrot attack on `--scope head` over many draws of the scoped mosaic's pattern, without the
flow: each labelled photo of ../shared/data/faces anonymized as the flow would (its media id from its
name), then again with the id salted (`#1`, `#2`, ...: other draws of the same method), and matched
rank-1 against the others anonymized the same way (own photo left out). One flow run of
`benchmarks/privacy.py` is one draw; this gives their spread. Solid (no pattern) is the reference.
Printed per half of the people (sorted names) and overall, beside chance.

    .venv/bin/python benchmarks/scope_patterns.py [--draws 8] [--levels 14]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import shared_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=8, help="pattern draws for mosaic (the first is the flow's own)")
    ap.add_argument("--levels", type=int, default=None, help="the pattern's grey levels (default: SCOPED_LEVELS)")
    args = ap.parse_args()

    import faceveil.models.anonymizers.masks as masks
    from faceveil.hashing import media_id
    from faceveil.models.anonymizers import MaskSettings
    from faceveil.models.detectors import create_detector
    from faceveil.models.embedders import create_embedder
    from faceveil.validation.attack import Gallery, labelled_photos, parrot_vectors

    if args.levels is not None:
        masks.SCOPED_LEVELS = args.levels
        masks.scoped_pattern.cache_clear()
    data = shared_data() / "faces"
    files = [(str(p.relative_to(data)), "image") for p in sorted(data.rglob("*")) if p.is_file()]
    embedder = create_embedder("dlib-resnet")
    gallery = Gallery.build(str(data), labelled_photos(str(data), files), create_detector(), embedder)
    people = sorted(set(gallery.labels))
    first = np.isin(gallery.labels, people[: len(people) // 2])
    chance = 1 / len(people)
    print(
        f"{len(gallery)} labelled faces of {len(people)} people; rank-1 chance {100 * chance:.1f} %, "
        f"1.5x chance {150 * chance:.1f} %; pattern levels +-{masks.SCOPED_LEVELS}"
    )

    def rank1(method: str, salt: str) -> np.ndarray:
        """Per photo: its rank-1 match among the others, anonymized alike, names its person (any cosine)."""
        v = parrot_vectors(gallery, method, MaskSettings(scope="head"), embedder, lambda rel: media_id(rel) + salt)
        return gallery.rate(v, v, -np.inf)[0] & gallery.eligible

    rows = {"solid@head": [""], "mosaic@head": [""] + [f"#{k}" for k in range(1, args.draws)]}
    for name, salts in rows.items():
        rates = []
        for salt in salts:
            t0 = time.perf_counter()
            hit = rank1(name.split("@")[0], salt)
            rates.append(
                [
                    hit[first].sum() / (first & gallery.eligible).sum(),
                    hit[~first].sum() / (~first & gallery.eligible).sum(),
                    hit.sum() / gallery.eligible.sum(),
                ]
            )
            a, b, c = rates[-1]
            print(
                f"{name:12} draw {salt or 'flow':5} halves {100 * a:5.1f} / {100 * b:5.1f} %  all {100 * c:5.1f} %"
                f"  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        r = np.asarray(rates)
        print(
            f"{name:12} mean over {len(salts)} draw(s): halves {100 * r[:, 0].mean():.1f} / {100 * r[:, 1].mean():.1f} %, "
            f"all {100 * r[:, 2].mean():.1f} % (sd {100 * r[:, 2].std():.1f}) = {r[:, 2].mean() / chance:.2f}x chance"
        )


if __name__ == "__main__":
    main()
