"""Talking to a Prefect API for `faceveil serve` (flows/service.py): work pools, deployments, the
workers' first poll, and whether an external server answers without credentials."""

from __future__ import annotations

import time

POOL_TYPE = "process"


def external_auth(api_url: str, auth: str | None) -> str:
    """How this process reaches an external API, and a warning when it answers anyone."""
    import httpx

    how = (
        "authenticated with $PREFECT_API_AUTH_STRING"
        if auth
        else "unauthenticated: $PREFECT_API_AUTH_STRING is not set"
    )
    try:
        anonymous = httpx.post(f"{api_url.rstrip('/')}/flows/filter", json={"limit": 1}, timeout=10).status_code
    except httpx.HTTPError:
        return how
    if anonymous < 400:
        how += (
            "; WARNING: the server answers API calls without credentials (start it with PREFECT_SERVER_API_AUTH_STRING)"
        )
    return how


def ensure_pool(name: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name, type=POOL_TYPE, base_job_template=ProcessWorker.get_default_base_job_template()
                )
            )
            return f"created, type {POOL_TYPE}"
        except ObjectAlreadyExists:
            pool = client.read_work_pool(name)
            if pool.type != POOL_TYPE:
                raise RuntimeError(f"work pool {name!r} exists with type {pool.type!r}, not {POOL_TYPE!r}") from None
            return f"exists, type {POOL_TYPE}"


def delete_deployment(name: str) -> bool:
    """Deletes deployment `name` ('flow/deployment') from the server; whether there was one."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.delete_deployment(client.read_deployment_by_name(name).id)
        except ObjectNotFound:
            return False
    return True


def registered() -> list[str]:
    """'flow/deployment (schedule)' of every deployment on the server."""
    from prefect.client.orchestration import get_client

    out = []
    with get_client(sync_client=True) as client:
        for d in client.read_deployments():
            flow = client.read_flow(d.flow_id).name
            when = ", ".join(schedule_text(s.schedule) for s in d.schedules if s.active) or "on demand"
            out.append(f"{flow}/{d.name} ({when}; pool {d.work_pool_name})")
    return sorted(out)


def schedule_text(schedule) -> str:
    cron = getattr(schedule, "cron", None)
    if cron:
        return f"cron '{cron}' {getattr(schedule, 'timezone', None) or 'UTC'}"
    return str(schedule)


def wait_for_workers(pools: list[str], processes, timeout: float) -> None:
    """Until each pool's worker has said hello to the API (its first poll for runs)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            for name, proc in processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"the {name} exited with code {proc.returncode}")
            if all(any(w.name == f"faceveil-{p}" for w in client.read_workers_for_work_pool(p)) for p in pools):
                return
            time.sleep(0.5)
    raise RuntimeError(f"the workers did not reach the API within {timeout:.0f} s")
