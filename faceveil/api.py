"""The Python entry points: what the command line does, callable from a program."""
from __future__ import annotations


def anonymize(src: str, dest: str, **settings) -> dict:
    """Anonymizes every face of the archive at `src` into `dest` (local folders or s3://);
    settings are the fields of `faceveil.config.AnonymizeConfig`. Returns the run summary."""
    from faceveil.config import AnonymizeConfig
    from faceveil.flows.anonymize import run_anonymize

    return run_anonymize(AnonymizeConfig(src=src, dest=dest, **settings))
