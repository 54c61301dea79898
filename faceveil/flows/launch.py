"""Starting an anonymize run from this process (`faceveil anonymize`, `faceveil.api`, scheduled runs):
the preflight, then the flow on its Dask cluster and Prefect API. Imports neither Prefect nor Dask
itself: the run's server and cluster start first, and the flow's modules import while they boot."""

from __future__ import annotations

import functools
import importlib

from faceveil.config import AnonymizeConfig
from faceveil.flows.handover import handed_over, options_handed_over
from faceveil.flows.key_refs import withholding
from faceveil.flows.preflight import in_this_process, local_workers, nothing_new, prepare_run
from faceveil.flows.runtime import flow_runtime, preload_validation
from faceveil.pipeline.places import state_of
from faceveil.storage.keys import MasterKey


def run_anonymize(config: AnonymizeConfig, key: MasterKey | None = None, key_ref: dict | None = None) -> dict:
    """Runs the flow on a Dask cluster (local, or `config.cluster.dask_address`) with a Prefect API. A
    reversible run needs the master key (the vault's control files are signed with it, the index's
    templates protected): `key`, handed to the flow in this process as RunKeys, or `key_ref`, a
    reference the flow resolves itself (flows/key_refs.py). An old archive's private files in
    DEST/_faceveil/ move to the state root first. A run with nothing new is done without a cluster or
    a server (preflight.nothing_new)."""
    config, secret = prepare_run(config, key, key_ref)
    unchanged, found = nothing_new(config, secret)
    return unchanged if unchanged is not None else run_prepared(config, secret, key_ref, found)


def run_prepared(config: AnonymizeConfig, secret, key_ref: dict | None = None, found: list | None = None) -> dict:
    """The flow of a run that preflight.prepare_run prepared (`config`, `secret`: what it returned)
    and nothing_new found work for (`found`: the media it found, which size a local cluster), on its Dask
    cluster and Prefect API (run_anonymize's second half; `faceveil anonymize` takes the two steps itself).
    The validation's imports (preload_validation) and the flow's (flows/anonymize: Prefect, the tasks)
    happen while the server and the workers boot."""
    preload_validation(state_of(config), config.tracking_uri, config.mlflow_artifacts)
    secret = None if key_ref is not None else secret  # the flow resolves a reference itself
    with (
        withholding(key_ref),
        handed_over(secret) as token,
        options_handed_over(config) as (public, options),
        flow_runtime(
            0 if in_this_process(config, found) else local_workers(config, found),
            config.cluster.threads_per_worker,
            config.cluster.dask_address,
            functools.partial(warm_worker, config),
            config.cluster.dask_tls,
            meanwhile=lambda: importlib.import_module("faceveil.flows.anonymize"),
        ) as runner,
    ):
        from faceveil.flows.anonymize import anonymize_archive

        return anonymize_archive.with_options(task_runner=runner)(
            public, index_token=token, options_token=options, key_ref=key_ref
        )


def warm_worker(config: AnonymizeConfig) -> None:
    """tasks/wrappers.warm_worker on a worker, named from here so this process need not import the
    task modules to hand it over."""
    from faceveil.tasks.wrappers import warm_worker

    warm_worker(config)
