"""Every file in deployments/ loads: YAML and TOML parse, prefect.yaml is what `prefect deploy` reads
(its own model) and its entrypoints import and name real flows taking the parameters given, the
example config is accepted by the config loader, the Dask specs ask for one GPU per worker."""

import importlib.util
import inspect
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENTS = REPO / "deployments"


def test_every_file_is_known_and_parses():
    files = sorted(p.name for p in DEPLOYMENTS.iterdir() if p.is_file())
    assert files == [
        "archive.example.toml",
        "dask-gpu.py",
        "dask-jobqueue.yaml",
        "dask-kubernetes.yaml",
        "prefect.yaml",
    ]
    for p in DEPLOYMENTS.iterdir():
        if p.suffix == ".yaml":
            assert isinstance(yaml.safe_load(p.read_text()), dict), p
        elif p.suffix == ".toml":
            tomllib.loads(p.read_text())
        else:
            compile(p.read_text(), str(p), "exec")


def test_prefect_yaml_entrypoints_are_flows_with_those_parameters():
    from prefect.flows import Flow
    from prefect.utilities.importtools import import_object

    from faceveil.flows.service import pools_of, read_prefect_file

    spec = read_prefect_file(DEPLOYMENTS / "prefect.yaml")  # Prefect's own model of the file
    names = {}
    for d in spec["deployments"]:
        flow = import_object(d["entrypoint"])
        assert isinstance(flow, Flow), d["entrypoint"]
        params = inspect.signature(flow.fn).parameters
        assert set(d.get("parameters") or {}) <= set(params), (d["name"], set(d["parameters"]) - set(params))
        assert d["parameters"]["config_path"] == "{{ $FACEVEIL_CONFIG }}"  # a path, filled in at deploy time
        assert not {"key", "master_key", "secret", "password"} & set(params)
        assert d["work_pool"]["name"] == "faceveil"
        names[flow.name] = d
    assert set(names) == {"scheduled_anonymize", "scheduled_restore", "scheduled_report", "scheduled_check"}
    nightly = names["scheduled_anonymize"]
    assert nightly["schedules"] == [{"cron": "0 2 * * *", "timezone": "UTC"}] and nightly["concurrency_limit"] == 1
    check = names["scheduled_check"]  # after the nightly run, one at a time
    assert check["name"] == "check-nightly" and check["concurrency_limit"] == 1
    assert check["schedules"] == [{"cron": "0 4 * * *", "timezone": "UTC"}]
    from prefect.client.schemas.schedules import CronSchedule

    for d in (nightly, check):
        CronSchedule(cron=d["schedules"][0]["cron"], timezone="UTC")
    assert pools_of(spec) == ["faceveil"]


def test_example_config_is_accepted_by_the_loader():
    from faceveil.config_file import load_config_file

    f = load_config_file(DEPLOYMENTS / "archive.example.toml")
    assert f.key_ref == {"file": "/etc/faceveil/archive.key"} and f.needs_key
    assert f.settings["src"] and f.settings["dest"] and f.settings["max_leak"] == 0.0
    assert (f.restore_deploy, f.restore_roots) == (False, ("/srv/restored",))  # restores by deployment: off


def _load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_spec_one_worker_per_gpu_each_seeing_its_own():
    gpu = _load_script(DEPLOYMENTS / "dask-gpu.py")
    specs = gpu.worker_specs("tcp://127.0.0.1:8786", ["0", "1", "2"])
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in specs] == ["0", "1", "2"]
    for cmd, _ in specs:
        assert cmd[cmd.index("--resources") + 1] == "GPU=1" and cmd[cmd.index("--nthreads") + 1] == "1"
        assert cmd[cmd.index("--nworkers") + 1] == "1" and "tcp://127.0.0.1:8786" in cmd
    assert importlib.util.find_spec(gpu.worker_specs("x", ["0"])[0][0][2]) is not None  # distributed.cli.dask_worker
    assert importlib.util.find_spec(gpu.scheduler_command("0.0.0.0", 8786)[2]) is not None


def test_kubernetes_spec_is_a_dask_cluster_with_a_gpu_per_worker():
    spec = yaml.safe_load((DEPLOYMENTS / "dask-kubernetes.yaml").read_text())
    assert (spec["apiVersion"], spec["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["args"][worker["args"].index("--resources") + 1] == "GPU=1"
    service = spec["spec"]["scheduler"]["service"]
    assert service["selector"]["dask.org/cluster-name"] == spec["metadata"]["name"]
    assert {p["port"] for p in service["ports"]} == {8786, 8787}


def test_jobqueue_spec_is_a_slurm_config_with_a_gpu_per_job():
    conf = yaml.safe_load((DEPLOYMENTS / "dask-jobqueue.yaml").read_text())["jobqueue"]["slurm"]
    assert conf["processes"] == 1 and "--gres=gpu:1" in conf["job-extra-directives"]
    args = conf["worker-extra-args"]
    assert args[args.index("--resources") + 1] == "GPU=1"
    try:
        import dask_jobqueue  # noqa: F401  (not a dependency; where it is installed, every key must be one it knows)
    except ImportError:
        return
    import dask

    known = dask.config.get("jobqueue.slurm")
    assert set(conf) <= set(known), set(conf) - set(known)


@pytest.mark.parametrize("name", ["scheduled_anonymize", "scheduled_restore", "scheduled_report", "scheduled_check"])
def test_scheduled_flows_refuse_a_config_path_left_unfilled(name):
    from faceveil.config_file import ConfigFileError
    from faceveil.flows import scheduled

    with pytest.raises(ConfigFileError, match="FACEVEIL_CONFIG"):
        scheduled._load("{{ $FACEVEIL_CONFIG }}")
    assert getattr(scheduled, name).name == name
