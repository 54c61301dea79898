"""Key rotation for the identity index: every template re-sealed under the new key."""

from __future__ import annotations

from faceveil.models.template_protection import TemplateOpenError
from faceveil.pipeline.sealed_index import index_keys, plain_vectors, with_sealed
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location


def reproject_index(dest: Location, old: MasterKey, new: MasterKey, dim: int = 128) -> int:
    """Key rotation for the index: every stored template is opened with the old key and sealed
    again with the new one (rows of an index written before as rotated vectors are sealed now);
    the plain vectors exist only in memory. A media already moved by an interrupted rotation is
    left as it is. meta.json is signed with the new key. Returns the rows re-sealed."""
    from faceveil.storage.control import ControlFileError, control_key
    from faceveil.storage.identity_index import IdentityIndex

    index = IdentityIndex(dest, dim=dim)
    try:  # signed with the old key, or with the new one by an interrupted rotation
        meta = IdentityIndex(dest, dim=dim, control=control_key(old)).meta()
    except ControlFileError:
        meta = IdentityIndex(dest, dim=dim, control=control_key(new)).meta()
    if not index.count():
        return 0
    a, b = index_keys(old, dim), index_keys(new, dim)
    index.add_sealed_column()
    n = 0
    for mid in index.media_ids():
        t = index.media_rows(mid)
        if not t.num_rows:
            continue
        try:
            plain = plain_vectors(t, a, dim)
        except TemplateOpenError:
            plain_vectors(t, b, dim)  # moved already (an interrupted rotation); anything else: the error stands
            continue
        index.replace_media(mid, with_sealed(t, b, plain, dim))
        n += t.num_rows
    IdentityIndex(dest, dim=dim, control=control_key(new)).write_meta(
        {**meta, "key_fingerprint": new.fingerprint, "template_transform": b.name, "score": b.score}, merge=False
    )
    return n
