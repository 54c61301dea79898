"""`--gpu-workers`: the tasks that run models or encode ask Dask for a worker resource GPU=1, and
only on a run configured for it (on a cluster without that resource they would never start)."""

import time

import pytest

from faceveil.cli.parser import build_parser
from faceveil.config import AnonymizeConfig
from faceveil.flows.anonymize import gpu_tasks

ADDRESS = "tcp://127.0.0.1:8786"


def test_annotation_only_when_configured(tmp_path):
    import dask

    on = AnonymizeConfig.of(src=str(tmp_path), dest=str(tmp_path / "o"), dask_address=ADDRESS, gpu_workers=True)
    off = AnonymizeConfig.of(src=str(tmp_path), dest=str(tmp_path / "o"), dask_address=ADDRESS)
    with gpu_tasks(on):
        assert dask.get_annotations() == {"resources": {"GPU": 1}}
    assert dask.get_annotations() == {}
    with gpu_tasks(off):
        assert dask.get_annotations() == {}
    with pytest.raises(ValueError, match="--dask-address"):  # a local cluster has no GPU resource: it would hang
        AnonymizeConfig.of(src=str(tmp_path), dest=str(tmp_path / "o"), gpu_workers=True)
    assert "gpu_workers" not in on.output_settings()  # where it ran does not change the output


def test_cli_flag(tmp_path):
    from faceveil.cli.runs import _config

    args = build_parser().parse_args(
        ["anonymize", str(tmp_path), str(tmp_path / "o"), "--dask-address", ADDRESS, "--gpu-workers"]
    )
    assert _config(args)[1].cluster.gpu_workers is True
    args = build_parser().parse_args(["anonymize", str(tmp_path), str(tmp_path / "o")])
    assert _config(args)[1].cluster.gpu_workers is False


def _inc(x):
    return x + 1


@pytest.mark.slow  # an in-process Dask cluster
def test_annotated_submit_waits_for_a_gpu_worker(tmp_path):
    """Through a real Client.submit (what Prefect's DaskTaskRunner calls): the annotated task carries
    the restriction to the scheduler and, with no GPU worker, stays unscheduled; the other runs."""
    from distributed import Client, LocalCluster

    on = AnonymizeConfig.of(src=str(tmp_path), dest=str(tmp_path / "o"), dask_address=ADDRESS, gpu_workers=True)
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        with gpu_tasks(on):
            gpu = client.submit(_inc, 1, key="gpu-task")
        cpu = client.submit(_inc, 2, key="cpu-task")
        assert cpu.result(timeout=30) == 3

        def tasks(dask_scheduler):
            return {k: (ts.state, ts.resource_restrictions) for k, ts in dask_scheduler.tasks.items()}

        deadline = time.time() + 10
        while client.run_on_scheduler(tasks).get("gpu-task", (None,))[0] != "no-worker" and time.time() < deadline:
            time.sleep(0.05)
        seen = client.run_on_scheduler(tasks)
        assert seen["gpu-task"] == ("no-worker", {"GPU": 1}) and not seen["cpu-task"][1], seen
        assert gpu.status == "pending"
        gpu.cancel()
