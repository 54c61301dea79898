"""Secrets handed from the caller to a flow running in the same process, by an opaque token: Prefect
records flow parameters in its database, so keys and data keys never become parameters."""
from __future__ import annotations

import contextlib
import secrets

_HELD: dict[str, object] = {}


@contextlib.contextmanager
def handed_over(obj):
    """Yields a token the flow exchanges for `obj` with `take`; forgotten when the block ends."""
    token = secrets.token_hex(16)
    _HELD[token] = obj
    try:
        yield token
    finally:
        _HELD.pop(token, None)


def take(token: str | None):
    if token is None or token not in _HELD:
        raise ValueError("this flow needs secrets handed over by its caller (run it through faceveil's run_* functions)")
    return _HELD[token]
