"""Indexing the identities of a run's media: each media's track templates, sealed with the key,
into the archive's LanceDB table (run in the flow's process, which alone holds the key).
`index_templates` is over 60 lines: each template's index row and the index's meta are dict literals
listed one column a line."""

from __future__ import annotations

import posixpath

import numpy as np
import pyarrow as pa

from faceveil.config import AnonymizeConfig
from faceveil.models.template_protection import IndexTemplates
from faceveil.pipeline.places import state_of
from faceveil.pipeline.sealed_index import seal_old_rows, with_sealed
from faceveil.storage.paths import Location


def index_templates(
    dest: Location,
    results,
    keys: IndexTemplates,
    embedder_name: str,
    key_fingerprint: str,
    view: str,
    control: bytes | None = None,
) -> int:
    """Writes the templates of every media in `results` (embedded the `view` way), sealed with the
    key (replacing that media's rows: re-runs never duplicate); returns the rows written. Rows of an
    index written before with rotated templates are sealed too. `control`: meta.json's MAC key."""
    from faceveil.storage.identity_index import QUALITY_COLUMNS, IdentityIndex, templates_schema
    from faceveil.pipeline.toolkit import loaded_embedder

    emb = loaded_embedder(embedder_name)
    if keys.dim != emb.dim:
        raise ValueError(f"index keys are for dim {keys.dim}, the embedder gives {emb.dim}")
    index = IdentityIndex(dest, dim=emb.dim, control=control)
    seal_old_rows(index, keys)
    n = 0
    for res in results:
        if not res.templates:
            continue
        mid, rel = res.row["media_id"], res.row["rel_path"]
        vecs = np.stack([t["vector"] for t in res.templates]).astype(np.float32)
        counts: dict[tuple, int] = {}
        rows = []
        for t, v in zip(res.templates, vecs):
            c = counts[(t["track_id"], t["kind"])] = counts.get((t["track_id"], t["kind"]), -1) + 1
            rows.append(
                {
                    "row_id": f"{mid}:{t['track_id']}:{t['kind']}{c}",
                    "media_id": mid,
                    "rel_path": rel,
                    "camera": posixpath.dirname(rel),
                    "track_id": t["track_id"],
                    "kind": t["kind"],
                    "first_frame": t["first_frame"],
                    "last_frame": t["last_frame"],
                    "t_start_s": t["t_start_s"],
                    "t_end_s": t["t_end_s"],
                    "boxes_json": t["boxes_json"],
                    "vault_key_ids": t["vault_key_ids"],
                    "embedder": emb.name,
                    "quality": t["quality"],
                    **{c: t.get(c) for c in QUALITY_COLUMNS},
                    "vector": v,
                }
            )  # face quality: None unknown
        plain = pa.Table.from_pylist(rows, schema=templates_schema(emb.dim))
        index.replace_media(mid, with_sealed(plain, keys, vecs, emb.dim))
        n += len(rows)
    meta = index.meta() or {}
    fresh = {"template_transform": keys.name, "score": keys.score}
    if "threshold" not in meta:
        fresh.update(
            {
                "embedder": emb.name,
                "embedder_weights": emb.weights_id,
                "dim": emb.dim,
                "template_view": view,
                "threshold": emb.same_person_threshold,
                "calibrated": False,
                "key_fingerprint": key_fingerprint,
            }
        )
    if n or any(meta.get(k) != v for k, v in fresh.items()):
        index.write_meta(fresh)
    return n


def index_archive(config: AnonymizeConfig, results, keys) -> int:
    """The run's templates into the archive's index (`keys`: the run's RunKeys, tasks/vault_seals)."""
    return index_templates(
        state_of(config),
        results,
        keys.index,
        config.sealing.embedder,
        config.sealing.vault_lock.fingerprint,
        config.settings.template_view,
        keys.control,
    )
