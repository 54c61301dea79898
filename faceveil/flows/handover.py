"""Secrets handed from the caller to a flow running in the same process, by an opaque token: Prefect
records flow parameters in its database, so keys and data keys never become parameters."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import replace

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
        raise ValueError(
            "this flow needs secrets handed over by its caller (run it through faceveil's run_* functions)"
        )
    return _HELD[token]


@contextlib.contextmanager
def options_handed_over(config):
    """Yields (`config` without its storage options, a token for them): storage options may hold
    credentials, and a config is a flow parameter. The flow gets them back with `with_options`."""
    with handed_over(dict(config.storage_options)) as token:
        yield replace(config, storage_options={}), token


def with_options(config, token: str | None):
    """`config` with the storage options handed over under `token` (unchanged without a token)."""
    return config if token is None else replace(config, storage_options=take(token))
