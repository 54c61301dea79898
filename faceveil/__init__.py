"""faceveil: workflow-orchestrated face anonymization for video archives and face datasets."""
__version__ = "0.1.0"


def anonymize(src: str, dest: str, **settings) -> dict:
    """Anonymizes every face of the archive at `src` into `dest` (local folders or s3://);
    settings are the fields of `faceveil.config.AnonymizeConfig`. Returns the run summary."""
    from faceveil.config import AnonymizeConfig
    from faceveil.flows.anonymize import run_anonymize

    return run_anonymize(AnonymizeConfig(src=src, dest=dest, **settings))
