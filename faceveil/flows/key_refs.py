"""Keys by reference: a flow is given where its key is ({"file": PATH}, {"env": NAME} or
{"prefect_secret": BLOCK}), never the key, and resolves it in its own process. Prefect records flow
parameters in its database, so a reference is what a deployment (or any flow run) may carry."""

from __future__ import annotations

import contextlib

from faceveil.config_file import check_key_ref
from faceveil.flows.runtime import without_secrets, withheld
from faceveil.storage.keys import BadKeyError, MasterKey, decode_key, load_key


def resolve_key(ref: dict) -> MasterKey:
    """The master key `ref` names, read here. Errors name the reference, never key material."""
    ((kind, name),) = check_key_ref(ref, "key reference").items()
    if kind == "file":
        return load_key(name)
    if kind == "env":
        import os

        text = os.environ.get(name) or withheld(name)  # withheld: out of the environment while a flow runs
        if not text:
            raise BadKeyError(f"no key: ${name} is not set in the process that runs the flow")
        return decode_key(text, f"${name}")
    return decode_key(_prefect_secret(name), f"Prefect secret block {name!r}")


def _prefect_secret(name: str) -> str:
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name, _sync=True)
    except Exception as e:  # not found, no API: the error names the block only
        raise BadKeyError(
            f"Prefect secret block {name!r} could not be loaded from the Prefect API "
            f"({type(e).__name__}: {str(e)[:200]})"
        ) from None
    value = block.get()
    if not isinstance(value, str):
        raise BadKeyError(f"Prefect secret block {name!r}: expected a faceveil key as text")
    return value


def env_names(ref: dict | None) -> tuple[str, ...]:
    """The environment variable a reference names (to keep it from the processes a run starts)."""
    return (ref["env"],) if ref and "env" in ref else ()


@contextlib.contextmanager
def withholding(ref: dict | None):
    """While the block runs, the key variables, and the variable `ref` names, are out of this
    process's environment (processes started then do not inherit them); `resolve_key` still reads
    them in this process."""
    with without_secrets(env_names(ref)):
        yield


def describe(ref: dict | None) -> str:
    """A reference as it may be printed (it holds no secret)."""
    if not ref:
        return "none"
    ((kind, name),) = ref.items()
    return {"file": f"key file {name}", "env": f"${name}", "prefect_secret": f"Prefect secret block {name!r}"}[kind]
