"""Dask for a run: the local cluster of worker processes (tls:// with a throwaway in-memory
certificate, Security.temporary, so embeddings and restore's data keys travel encrypted; its workers'
files in a new 0700 folder), and the client certificates of an existing tls:// scheduler."""

from __future__ import annotations

import os


def dask_tls_files(
    address: str | None, ca: str | None = None, cert: str | None = None, key: str | None = None
) -> tuple[str, str, str | None] | None:
    """The client's TLS files for the Dask scheduler at `address`: for a tls:// address the CA and
    client certificate (and key, unless the certificate file holds it) given here (--dask-tls-ca,
    --dask-tls-cert, --dask-tls-key; a config file's dask_tls_*), each missing one from Dask's own
    configuration (distributed.comm.tls.ca-file, .client.cert, .client.key, e.g. the environment's
    DASK_DISTRIBUTED__COMM__TLS__CA_FILE); None for any other address. A ValueError says what is
    wrong: a tls:// address without a CA or certificate, files for a tcp:// or local cluster, a
    file that is not there."""
    given = {"--dask-tls-ca": ca, "--dask-tls-cert": cert, "--dask-tls-key": key}
    if not (address or "").startswith("tls://"):
        if any(given.values()):
            raise ValueError(
                f"{', '.join(k for k, v in given.items() if v)} given, but the Dask scheduler is "
                f"{address or 'a local cluster'}: TLS certificates are for a tls:// scheduler address"
            )
        return None
    import dask

    configured = [dask.config.get(f"distributed.comm.tls.{k}", None) for k in ("ca-file", "client.cert", "client.key")]
    ca, cert, key = (v or c or None for v, c in zip((ca, cert, key), configured))
    missing = [name for name, v in (("CA file", ca), ("client certificate", cert)) if not v]
    if missing:
        raise ValueError(
            f"{address} is a TLS scheduler, and the client has no {' and no '.join(missing)}: give "
            "--dask-tls-ca FILE --dask-tls-cert FILE [--dask-tls-key FILE] (in a config file: dask_tls_ca, "
            "dask_tls_cert, dask_tls_key) or Dask's configuration (DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT, DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY)"
        )
    for what, path in (("CA file", ca), ("client certificate", cert), ("client key", key)):
        if path and not os.path.isfile(path):
            raise ValueError(f"the Dask TLS {what} {path} is not a file")
    return ca, cert, key


def local_tls() -> bool:
    """Whether a local cluster talks TLS: yes, unless FACEVEIL_DASK_TLS is 0 / false / no / off (only
    to measure what TLS costs)."""
    return os.environ.get("FACEVEIL_DASK_TLS", "1").strip().lower() not in ("0", "false", "no", "off")


def client_security(files: tuple | None) -> dict | None:
    """The Dask client's keyword arguments for a tls:// scheduler: its Security (encryption required)."""
    if files is None:
        return None
    from distributed.security import Security

    ca, cert, key = files
    return {"security": Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)}


def local_cluster(n_workers: int, threads_per_worker: int):
    """(cluster, client, its workers' folder): tls:// unless `local_tls` says no; the workers' files
    (spilled results, their work folders) in a new 0700 folder, not Dask's shared /tmp/dask-scratch-space."""
    import logging
    import tempfile

    import dask
    from distributed import Client, LocalCluster
    from distributed.security import Security

    if os.environ.get("PREFECT_LOGGING_LEVEL", "").upper() in ("WARNING", "ERROR", "CRITICAL"):
        logging.getLogger("distributed").setLevel(logging.WARNING)
    # Dask sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive mmap
    # threshold: every decoded frame is then mmapped, zeroed and unmapped (encoding ~35% slower).
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    security = Security.temporary() if local_tls() else None  # in memory; the nannies hand it to their workers
    workdir = tempfile.mkdtemp(prefix="faceveil-dask-")
    try:
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
            security=security,
            protocol="tls://" if security else None,
            local_directory=workdir,
        )
    except BaseException:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return cluster, Client(cluster), workdir


def close_cluster(client, cluster, workdir: str) -> None:
    import shutil

    try:
        client.close()
        cluster.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
