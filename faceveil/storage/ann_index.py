"""The identity index's ANN index: its parameters for a table size, and LanceDB's index config.

Search is exact below the index's `ann_min_rows`; above it an IVF_PQ index answers (2-d PQ sub-vectors,
re-ranked on the stored float32 vectors with `refine_factor` 10, so scores are exact cosines). Why
IVF_PQ: on 60k random 128-d unit vectors (the hardest case) it kept recall@10 at 1.0 (~5 ms a query),
where IVF_HNSW_SQ stopped at 0.89 even with ef 300 (refining cannot add candidates the graph missed); on
clustered, face-like data both reach ~1.0 (`benchmarks/index.py`), and the PQ index is ~5x smaller."""

from __future__ import annotations

import math

ANN_TYPES = ("IVF_PQ", "IVF_HNSW_SQ")


def ann_params(index_type: str, dim: int, refine_factor, n_rows: int) -> dict:
    """Index parameters for a table of n_rows. IVF_PQ: ~4096 rows per partition, 2-d PQ sub-vectors
    (4-d above 256 dims), nprobes ~25% of partitions (at least 20). IVF_HNSW_SQ: one HNSW graph per
    ~1M rows, ef 100."""
    if index_type == "IVF_HNSW_SQ":
        parts = max(1, round(n_rows / 1_000_000))
        return {
            "index_type": index_type,
            "num_partitions": parts,
            "nprobes": parts,
            "ef": 100,
            "m": 20,
            "ef_construction": 300,
            "refine_factor": refine_factor,
        }
    parts = max(1, min(4096, round(n_rows / 4096)))
    sub = dim // 2 if dim <= 256 else dim // 4
    while sub > 1 and dim % sub:
        sub -= 1
    return {
        "index_type": index_type,
        "num_partitions": parts,
        "num_sub_vectors": sub,
        "nprobes": min(parts, max(20, math.ceil(parts / 4))),
        "refine_factor": refine_factor,
    }


def ann_config(p: dict):
    """LanceDB's index config for the parameters `p` (from ann_params)."""
    from lancedb.index import HnswSq, IvfPq

    if p["index_type"] == "IVF_HNSW_SQ":
        return HnswSq(
            distance_type="cosine", num_partitions=p["num_partitions"], m=p["m"], ef_construction=p["ef_construction"]
        )
    return IvfPq(distance_type="cosine", num_partitions=p["num_partitions"], num_sub_vectors=p["num_sub_vectors"])
