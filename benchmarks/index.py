"""Identity index at scale: fills an IdentityIndex with N synthetic templates (N/10 identities, 10
noisy unit-norm samples each: same-identity cosine ~0.64, others ~0), builds the ANN index, and
prints build time, p50/p95 latency of exact (brute-force) and indexed search, recall@10 of the
index against the exact search, top-1 identity accuracy of both, replace_media latency on the
full table, rows and bytes on disk. Queries are fresh samples of stored identities (new probe photos).

    .venv/bin/python benchmarks/index.py [--n 1000000] [--dim 128] [--queries 200] [--index-type IVF_PQ]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faceveil.storage.identity_index import IdentityIndex  # noqa: E402
from faceveil.storage.paths import Location  # noqa: E402

SAMPLES = 10  # per identity


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def noisy(centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Samples around unit centres at cosine ~0.8 to the centre (~0.64 to each other)."""
    d = centres.shape[-1]
    return unit(centres + rng.standard_normal(centres.shape, dtype=np.float32) * (0.75 / np.sqrt(d)))


def batch_rows(media_id: str, start: int, vectors: np.ndarray, schema: pa.Schema) -> pa.Table:
    """A batch of template rows; track_id is the global sample number (identity = track_id // SAMPLES)."""
    n, d = vectors.shape
    ids = np.arange(start, start + n, dtype=np.int64)
    frames = ids * 10
    return pa.table(
        {
            "row_id": pa.array([f"{media_id}:{i}:template0" for i in ids]),
            "media_id": pa.array([media_id] * n),
            "rel_path": pa.array([f"cam{start % 7}/{media_id}.mp4"] * n),
            "camera": pa.array([f"cam{start % 7}"] * n),
            "track_id": ids,
            "kind": pa.array(["template"] * n),
            "first_frame": frames,
            "last_frame": frames + 50,
            "t_start_s": frames / 25.0,
            "t_end_s": (frames + 50) / 25.0,
            "boxes_json": pa.array(["[[0,100,100,220,240]]"] * n),
            "vault_key_ids": pa.array([[f"k{i}"] for i in ids], pa.list_(pa.string())),
            "embedder": pa.array(["synthetic"] * n),
            "quality": np.full(n, 0.9, np.float32),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), d),
        },
        schema=schema,
    )


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q))


def main(args) -> None:
    rng = np.random.default_rng(args.seed)
    n_id = max(1, args.n // SAMPLES)
    centres = unit(rng.standard_normal((n_id, args.dim), dtype=np.float32))
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="faceveil-index-bench-"))
    loc = Location(str(workdir))
    ann = IdentityIndex(loc, dim=args.dim, ann_min_rows=0, index_type=args.index_type)
    exact = IdentityIndex(loc, dim=args.dim, ann_min_rows=sys.maxsize)
    print(f"index at {workdir} ({args.index_type}, n={args.n}, dim={args.dim})", flush=True)
    try:
        t_fill = 0.0
        per_batch = max(SAMPLES, args.batch // SAMPLES * SAMPLES)
        for b, start in enumerate(range(0, args.n, per_batch)):
            n = min(per_batch, args.n - start)
            idx = np.arange(start, start + n) // SAMPLES
            rows = batch_rows(f"bench{b:05d}", start, noisy(centres[idx], rng), ann.schema)
            t_fill += timed(ann.replace_media, f"bench{b:05d}", rows)[1]
        print(f"rows: {ann.count()} (inserted in {t_fill:.1f} s)", flush=True)

        q_id = rng.integers(0, n_id, args.queries)
        queries = noisy(centres[q_id], rng)
        for q in queries[:3]:  # warm caches
            exact.search(q, k=10)
        t_exact, truth, top1_exact = [], [], 0
        for q, ident in zip(queries, q_id):
            res, dt = timed(exact.search, q, k=10)
            t_exact.append(dt)
            truth.append({r["row_id"] for r in res})
            top1_exact += res[0]["track_id"] // SAMPLES == ident

        bytes_before = ann.disk_bytes()
        _, t_build = timed(ann.build_ann_index, force=True)
        params = ann.meta().get("ann", {})
        idx_info = [i for i in ann._open().list_indices() if i.columns == ["vector"]]
        for q in queries[:3]:
            ann.search(q, k=10)
        t_ann, recall, top1_ann = [], [], 0
        for q, ident, tr in zip(queries, q_id, truth):
            res, dt = timed(ann.search, q, k=10)
            t_ann.append(dt)
            recall.append(len({r["row_id"] for r in res} & tr) / max(1, len(tr)))
            top1_ann += res[0]["track_id"] // SAMPLES == ident
        _, t_batch = timed(ann.search_many, queries, k=10)

        small = batch_rows("replace-probe", args.n + 1, noisy(centres[rng.integers(0, n_id, 20)], rng), ann.schema)
        t_replace = [timed(ann.replace_media, "replace-probe", small)[1] for _ in range(3)]
        assert ann.count() == args.n + 20, ann.count()

        print(f"ANN index: {params}")
        print(f"build time: {t_build:.1f} s")
        print(
            f"exact search:   p50 {pct(t_exact, 50):.1f} ms  p95 {pct(t_exact, 95):.1f} ms  "
            f"top-1 identity {top1_exact / args.queries:.3f}"
        )
        print(
            f"indexed search: p50 {pct(t_ann, 50):.1f} ms  p95 {pct(t_ann, 95):.1f} ms  "
            f"top-1 identity {top1_ann / args.queries:.3f}"
        )
        print(f"recall@10 (index vs exact, {args.queries} queries): {np.mean(recall):.3f} (min {np.min(recall):.1f})")
        print(f"search_many ({args.queries} queries, indexed): {t_batch * 1e3:.0f} ms")
        print(f"replace_media (20 rows into the full table): p50 {pct(t_replace, 50):.0f} ms")
        print(
            f"bytes on disk: {bytes_before / 1e6:.1f} MB before the index, {ann.disk_bytes() / 1e6:.1f} MB after"
            + (f" (index {idx_info[0].size_bytes / 1e6:.1f} MB)" if idx_info and idx_info[0].size_bytes else "")
        )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="templates to store")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100_000, help="rows per insert (bounds memory)")
    ap.add_argument("--index-type", default="IVF_PQ", choices=["IVF_PQ", "IVF_HNSW_SQ"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", help="where to build the index (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the index folder afterwards")
    main(ap.parse_args())
