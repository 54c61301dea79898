"""A Dask cluster with one worker per GPU, for `dask_address` in the config file (or
`faceveil anonymize --dask-address`):

    python deployments/dask-gpu.py [--gpus 0,1,2,3] [--host 0.0.0.0] [--port 8786]

starts a scheduler and, for each GPU, one worker process with one thread that sees only that GPU
(CUDA_VISIBLE_DEVICES) and offers the resource GPU=1, so that tasks asking for a GPU run one at a time
per GPU. It prints the scheduler's address and runs until Ctrl-C, then stops them all. The same by
hand, on each GPU machine:

    dask scheduler --host 0.0.0.0 --port 8786
    CUDA_VISIBLE_DEVICES=0 dask worker tcp://SCHEDULER:8786 --nworkers 1 --nthreads 1 --resources GPU=1 --name gpu0
    CUDA_VISIBLE_DEVICES=1 dask worker tcp://SCHEDULER:8786 --nworkers 1 --nthreads 1 --resources GPU=1 --name gpu1

A plain tcp:// scheduler carries data unencrypted: anonymizing sends only the vault's public key, but
`faceveil restore` sends data keys and refuses one (use tls:// with certificates there).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def visible_gpus() -> list[str]:
    """The GPUs this machine shows: $CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`'s count."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return [g.strip() for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def scheduler_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", host, "--port", str(port)]


def worker_specs(address: str, gpus: list[str]) -> list[tuple[list[str], dict[str, str]]]:
    """(command, environment) of one worker per GPU: one process, one thread, GPU=1, that GPU alone."""
    return [
        (
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                address,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--resources",
                "GPU=1",
                "--name",
                f"gpu{gpu}",
            ],
            {**os.environ, "CUDA_VISIBLE_DEVICES": gpu},
        )
        for gpu in gpus
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpus", default=None, help="comma-separated GPU ids (default: every visible GPU)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8786)
    args = p.parse_args(argv)
    gpus = args.gpus.split(",") if args.gpus else visible_gpus()
    if not gpus:
        print("no GPU found (set --gpus)", file=sys.stderr)
        return 2
    address = f"tcp://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}"
    procs = [subprocess.Popen(scheduler_command(args.host, args.port))]
    time.sleep(2)
    procs += [subprocess.Popen(cmd, env=env) for cmd, env in worker_specs(address, gpus)]
    print(f'scheduler {address}, {len(gpus)} GPU worker(s): set dask_address = "{address}"', flush=True)
    try:
        while all(proc.poll() is None for proc in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
