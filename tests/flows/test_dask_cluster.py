"""The anonymize flow on an external Dask cluster: a `dask scheduler` and `dask worker` processes
started here (what `--dask-address` points at in production). Both workers take work; a worker
SIGKILLed mid-run costs only its work in flight (the archive completes, every media once, outputs as
a clean run's, nothing partial ever visible in the public tree); `gpu_workers` sends the GPU tasks
only to workers with the GPU resource; a tls:// scheduler (certificates from a throwaway CA) runs
`faceveil anonymize --dask-address tls://...`."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from faceveil.flows.runtime import free_port

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.storage.media import iter_frames, probe_video, read_image
from faceveil.tasks.wrappers import warm_worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = pytest.mark.slow  # a Prefect API server, a Dask scheduler and workers in their own processes

REPO = Path(__file__).resolve().parents[2]
VIDEO = (".mp4", ".mkv")
# the tasks that run models or encode (flows/anonymize.py gpu_tasks), by their Dask key's prefix
GPU_TASKS = ("detect_chunk", "finish_video", "anonymize_image", "encode_segment")


class ExternalCluster:
    """`python -m distributed.cli.dask_scheduler` and one `dask_worker` per entry of `workers` (a dict of
    worker options: name, resources), each its own process on 127.0.0.1, one thread, no nanny (a
    killed worker stays dead), no dashboard. With `tls` (CA, certificate, key files) everything talks
    tls:// only, each process with that certificate. Everything started is stopped on exit."""

    def __init__(self, tmp: Path, workers: list[dict], tls: tuple[str, str, str] | None = None):
        self.tmp, self.specs, self.tls = tmp, workers, tls
        self.port = free_port()
        self.address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{self.port}"
        self.tls_args = ["--tls-ca-file", tls[0], "--tls-cert", tls[1], "--tls-key", tls[2]] if tls else []
        self.procs: dict[str, subprocess.Popen] = {}
        self.addresses: dict[str, str] = {}  # worker name -> its address at the scheduler
        self.client = None

    def _env(self) -> dict:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        env.pop("FACEVEIL_KEY", None)
        return env

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", *args],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
        )
        log.close()

    def __enter__(self):
        from distributed import Client

        try:
            # idle/death timeouts: should a teardown ever be skipped, nothing outlives the test for long
            self._start(
                "scheduler",
                [
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-dashboard",
                    "--no-show",
                    "--idle-timeout",
                    "900",
                    *(["--protocol", "tls"] if self.tls else []),
                    *self.tls_args,
                ],
            )
            for spec in self.specs:
                args = [
                    "distributed.cli.dask_worker",
                    self.address,
                    "--name",
                    spec["name"],
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--death-timeout",
                    "60",
                    "--memory-limit",
                    "0",
                    "--local-directory",
                    str(self.tmp / spec["name"]),
                    *self.tls_args,
                ]
                if spec.get("resources"):
                    args += ["--resources", spec["resources"]]
                self._start(spec["name"], args)
            deadline = time.time() + 120
            while True:
                try:
                    self.client = Client(self.address, timeout=5, security=self._security())
                    break
                except OSError:
                    if time.time() > deadline or self.procs["scheduler"].poll() is not None:
                        raise
                    time.sleep(0.3)
            self.client.wait_for_workers(len(self.specs), timeout=120)
            info = self.client.scheduler_info(n_workers=-1)["workers"]
            self.addresses = {w["name"]: addr for addr, w in info.items()}
            self.client.get_task_stream()  # the scheduler's task stream plugin, from now on
            return self
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _security(self):
        if not self.tls:
            return None
        from distributed.security import Security

        return Security(
            tls_ca_file=self.tls[0], tls_client_cert=self.tls[1], tls_client_key=self.tls[2], require_encryption=True
        )

    def stream(self, since: float) -> list[dict]:
        return self.client.get_task_stream(start=since)

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close(timeout=10)
        for name in [n for n in self.procs if n != "scheduler"] + ["scheduler"]:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert all(p.poll() is not None for p in self.procs.values())


def _by_worker(stream: list[dict], names: dict[str, str]) -> dict[str, Counter]:
    """worker name -> Counter of task prefixes it computed (Dask keys are `<function>-<token>`)."""
    named = {addr: name for name, addr in names.items()}
    out: dict[str, Counter] = {name: Counter() for name in names}
    for entry in stream:
        if entry.get("status", "OK") == "OK":
            key = entry["key"] if isinstance(entry["key"], str) else str(entry["key"][0])
            out[named.get(entry["worker"], entry["worker"])][key.rsplit("-", 1)[0]] += 1
    return out


def _media(dest: Path):
    return pq.read_table(private(dest) / "media").to_pandas()


def _outputs(dest: Path) -> dict[str, str]:
    """rel path -> SHA-256 of every file in the public tree."""
    return {
        p.relative_to(dest).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(dest.rglob("*"))
        if p.is_file()
    }


def _frames(path: Path) -> int:
    """Frames decoded from a video, start to end (raises on a truncated or corrupt file)."""
    info = probe_video(str(path))
    n = sum(1 for _ in iter_frames(str(path), info))
    assert n == info.n_frames, f"{path}: decoded {n} of {info.n_frames} frames"
    return n


def _decoded(path: Path) -> str:
    """SHA-256 of every decoded frame's pixels, in order (what a viewer gets, container bytes aside)."""
    h = hashlib.sha256()
    info = probe_video(str(path))
    for _, rgb in iter_frames(str(path), info):
        h.update(rgb.tobytes())
    return h.hexdigest()


def _faces(path: Path, every: int = 10) -> int:
    from faceveil.models.detectors import DetectorSettings, create_detector

    det = create_detector("centerface", DetectorSettings(threshold=0.5))
    info = probe_video(str(path))
    return sum(len(det.detect(rgb)) for _, rgb in iter_frames(str(path), info, select=lambda i: i % every == 0))


# ------------------------------------------------------------------------------ both workers work


def test_external_cluster_both_workers_run_tasks(sample_archive, tmp_path, prefect_server, figures):
    dest = tmp_path / "out"
    with ExternalCluster(tmp_path, [{"name": "w0"}, {"name": "w1"}]) as cluster:
        t0 = time.time()
        summary = run_anonymize(
            AnonymizeConfig.of(src=str(sample_archive), dest=str(dest), dask_address=cluster.address)
        )
        seconds = time.time() - t0
        work = _by_worker(cluster.stream(t0), cluster.addresses)
    assert summary["ok"] == 5 and summary["failed"] == 4, summary
    media = _media(dest)
    assert media.media_id.is_unique and len(media) == 9
    ok = media[media.status == "ok"]
    assert len(ok) == 5 and set(ok.device) <= {"cpu", "cuda"} and ok.device.notna().all()
    assert os.listdir(private(dest) / "staging") == []  # every output staged there, then renamed into place
    tasks = {name: sum(c.values()) for name, c in work.items()}
    assert set(work) == {"w0", "w1"} and all(n > 0 for n in tasks.values()), work  # both workers ran tasks
    figures.append(
        f"external Dask cluster (scheduler + 2 worker processes, 1 thread each): sample archive in "
        f"{seconds:.1f} s; tasks per worker {dict(tasks)}; " + "; ".join(f"{n}: {dict(c)}" for n, c in work.items())
    )


# ------------------------------------------------------------------------ a worker killed mid-run


def _archive(root: Path, copies: int) -> Path:
    """`copies` cameras, each with the sample's two videos (4 s and 2 s, 640x360, audio) and a photo."""
    from faceveil.sample import make_sample_archive

    base = root / "base"
    make_sample_archive(base, seconds=4.0, fps=25, size=(640, 360))
    src = root / "src"
    for k in range(copies):
        cam = src / f"cam{k:02d}"
        cam.mkdir(parents=True)
        shutil.copy(base / "cameras/lobby/clip_001.mp4", cam / "lobby.mp4")
        shutil.copy(base / "cameras/parking/clip_002.mkv", cam / "parking.mkv")
        shutil.copy(base / "photos/astronaut.jpg", cam / "astronaut.jpg")
    return src


class PublicTreePoller(threading.Thread):
    """Every 0.2 s: every file under DEST (the public tree: nothing private lives there). A temporary name there is a violation;
    each new (name, inode, size, mtime) is copied at once, to be decoded after the run: a file
    half-written under its final name would show as a truncated copy."""

    def __init__(self, dest: Path, snaps: Path):
        super().__init__(name="public-tree-poller", daemon=True)
        self.dest, self.snaps = dest, snaps
        self.stop = threading.Event()
        self.seen: dict[tuple, Path] = {}
        self.bad_names: set[str] = set()
        self.polls = 0

    def run(self) -> None:
        self.snaps.mkdir(parents=True, exist_ok=True)
        while not self.stop.is_set():
            self.poll()
            self.stop.wait(0.2)
        self.poll()

    def poll(self) -> None:
        self.polls += 1
        for dirpath, _dirnames, filenames in os.walk(self.dest):
            for name in filenames:
                path = Path(dirpath, name)
                rel = path.relative_to(self.dest).as_posix()
                if name.startswith(".") or ".tmp" in name:
                    self.bad_names.add(rel)
                try:
                    with open(path, "rb") as f:  # this inode, whatever renames follow
                        st = os.fstat(f.fileno())
                        key = (rel, st.st_ino, st.st_size, st.st_mtime_ns)
                        if key not in self.seen:
                            snap = self.snaps / f"{len(self.seen):05d}{path.suffix}"
                            snap.write_bytes(f.read())
                            self.seen[key] = snap
                except FileNotFoundError:
                    pass


FINAL_TASKS = ("finish_video", "join_video", "anonymize_image")  # each writes a media's output and row


class Killer(threading.Thread):
    """SIGKILLs the victim worker's process once (1) it is `not_before` (about mid-run), (2) the victim
    holds the result of a media's final task that the flow has already read (the scheduler forgot the
    key: the flow handed it back; or, should the flow keep it, 3 s after it finished), and (3) the
    victim is executing a model or encoding task. Records when, what it ran and what it held."""

    def __init__(self, cluster: ExternalCluster, victim: str, not_before: float):
        super().__init__(name="worker-killer", daemon=True)
        self.cluster, self.victim, self.not_before = cluster, victim, not_before
        self.killed_at: float | None = None
        self.executing: list[str] = []
        self.finished: list[str] = []  # final tasks the victim had finished before the kill
        self.unread: list[str] = []  # of those, the ones whose result the flow had not yet read (still held)
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        def executing(dask_worker) -> list[str]:  # on the worker (by value: this module is not importable there)
            return [str(ts.key) for ts in dask_worker.state.executing]

        def known(dask_scheduler, keys) -> list[str]:
            return [k for k in keys if k in dask_scheduler.tasks]

        try:
            client, addr = self.cluster.client, self.cluster.addresses[self.victim]
            since = time.time()
            while not self.stop.is_set():
                if time.time() >= self.not_before:
                    finals = {
                        str(e["key"]): max(s["stop"] for s in e["startstops"])
                        for e in client.get_task_stream(start=since)
                        if e["worker"] == addr and str(e["key"]).startswith(FINAL_TASKS)
                    }
                    held = set(client.run_on_scheduler(known, keys=list(finals)))
                    read = [k for k, stop in finals.items() if k not in held or stop < time.time() - 3]
                    running = client.run(executing, workers=[addr])[addr] if read else []
                    if any(k.startswith(GPU_TASKS) for k in running):
                        os.kill(self.cluster.procs[self.victim].pid, signal.SIGKILL)
                        self.killed_at, self.executing, self.finished = time.time(), running, sorted(finals)
                        self.unread = sorted(held)
                        return
                self.stop.wait(0.1)
        except BaseException as e:  # re-raised by the test
            self.error = e


def test_worker_killed_mid_run(tmp_path, prefect_server, figures):
    copies = int(os.environ.get("FACEVEIL_KILL_TEST_COPIES", "2"))
    src = _archive(tmp_path, copies)
    n_media = 3 * copies
    clean = tmp_path / "clean"

    # 2 s chunks: the 4 s videos are detected in two chunks, encoded in two segments and joined; the
    # 2 s ones in one chunk, finished in one pass (both paths of the DAG meet the kill)
    def config(out):
        return AnonymizeConfig.of(src=str(src), dest=str(out), dask_address=cluster.address, min_chunk_seconds=2.0)

    with ExternalCluster(tmp_path, [{"name": "w0"}, {"name": "w1"}]) as cluster:
        cluster.client.run(functools.partial(warm_worker, config(clean)))  # both runs on warm workers
        t0 = time.time()
        summary = run_anonymize(config(clean))
        clean_s = time.time() - t0
        assert summary["ok"] == n_media and summary["failed"] == 0, summary
        clean_work = _by_worker(cluster.stream(t0), cluster.addresses)

        for attempt in range(3):  # a run that ends before the kill's conditions meet (timing under load)
            dest = tmp_path / f"faulted{attempt}"  # is repeated into a fresh DEST, the kill aimed earlier
            poller = PublicTreePoller(dest, tmp_path / f"snapshots{attempt}")
            t1 = time.time()
            killer = Killer(cluster, "w1", not_before=t1 + 0.25 / (1 + attempt) * clean_s)  # mid-run
            poller.start()
            killer.start()
            try:
                summary = run_anonymize(config(dest))
            finally:
                killer.stop.set()
                poller.stop.set()
                killer.join(30)
                poller.join(60)
            faulted_s = time.time() - t1
            if killer.killed_at is not None or killer.error is not None:
                break
        stream = cluster.stream(t1)
        work = _by_worker(stream, cluster.addresses)
        survivors = list(cluster.client.scheduler_info(n_workers=-1)["workers"])
    if killer.error is not None:
        raise killer.error
    assert killer.killed_at is not None, "the run finished before the worker could be killed: make the archive bigger"
    assert cluster.procs["w1"].returncode == -signal.SIGKILL and survivors == [cluster.addresses["w0"]]

    # the archive completed: every media exactly once, ok
    assert summary["ok"] == n_media and summary["failed"] == 0, summary
    media = _media(dest)
    assert len(media) == n_media and media.media_id.is_unique and media.rel_path.is_unique
    assert set(media.status) == {"ok"} and set(media.device) <= {"cpu", "cuda"}
    # the tasks the killed worker was running ran again, to the end, on the survivor; the media it had
    # finished and the flow had read were not redone (their results died with it, but the flow had read
    # and released them). A result still held (the flow, slow under load, had not read it yet) is lost
    # with the worker: Dask computes it again, and the output is replaced whole (the poller checks that).
    w0 = cluster.addresses["w0"]
    done_on_w0 = {str(e["key"]) for e in stream if e["worker"] == w0 and e.get("status", "OK") == "OK"}
    assert killer.executing and set(killer.executing) <= done_on_w0, (killer.executing, work)
    computed = Counter(str(e["key"]) for e in stream)
    again = sorted(k for k, n in computed.items() if n > 1)
    redone = [k for k in again if k.startswith(FINAL_TASKS)]
    assert killer.finished and set(redone) <= set(killer.unread), (killer.finished, killer.unread, again)

    assert not [p for p in (private(dest) / "segments").rglob("*") if p.is_file()]  # joined, then removed

    # outputs as the clean run's: the same bytes, or (MKV: the muxer writes random segment and track
    # UIDs in every file, killed or not) the same decoded frames
    ours, theirs = _outputs(dest), _outputs(clean)
    assert set(ours) == set(theirs) and len(ours) == n_media
    same_bytes = {rel for rel in ours if ours[rel] == theirs[rel]}
    for rel in ours:
        if rel.endswith(VIDEO):
            assert _frames(dest / rel) == _frames(clean / rel) == probe_video(str(src / rel)).n_frames
        else:
            read_image(str(dest / rel))
    differ = sorted(set(ours) - same_bytes)
    assert all(rel.endswith(".mkv") and _decoded(dest / rel) == _decoded(clean / rel) for rel in differ), differ
    clean_media = _media(clean).set_index("rel_path")
    for row in media.itertuples():
        assert row.output_sha256 == hashlib.sha256((dest / row.output_path).read_bytes()).hexdigest()
        assert row.n_faces == clean_media.loc[row.rel_path, "n_faces"]  # the same faces found and masked
    before, after = _faces(src / "cam00/lobby.mp4"), _faces(dest / "cam00/lobby.mp4")
    assert before >= 5 and after == 0, (before, after)  # masked: no face the detector finds at 0.5

    # the public tree never showed a temporary name or a partial file
    assert poller.polls > 10 and not poller.bad_names, poller.bad_names
    outputs_seen = {key[0] for key in poller.seen}
    assert outputs_seen == set(ours), "the poller missed outputs"
    for (rel, *_), snap in poller.seen.items():
        if rel.endswith(VIDEO):
            assert _frames(snap) == probe_video(str(src / rel)).n_frames, rel
        else:
            read_image(str(snap))

    tasks = {n: sum(c.values()) for n, c in work.items()}
    twice = sorted(rel for rel, n in Counter(key[0] for key in poller.seen).items() if n > 1)
    figures.append(
        f"worker SIGKILLed mid-run ({n_media} media: {copies} x 4 s + 2 s 640x360 videos and a photo, "
        f"scheduler + 2 workers x 1 thread): clean run {clean_s:.1f} s "
        f"(tasks {dict((n, sum(c.values())) for n, c in clean_work.items())}), "
        f"with w1 killed {killer.killed_at - t1:.1f} s in (try {attempt + 1}; it was running "
        f"{', '.join(k.rsplit('-', 1)[0] for k in killer.executing)}) {faulted_s:.1f} s (tasks {tasks}); "
        f"every media once, ok; outputs as the clean run's ({len(same_bytes)} byte for byte, {len(differ)} MKV "
        f"frame for frame); "
        f"w1 had finished {', '.join(k.rsplit('-', 1)[0] for k in killer.finished)} "
        f"({len(killer.unread)} not yet read by the flow); tasks computed twice: "
        f"{', '.join(k.rsplit('-', 1)[0] for k in again) or 'none'}; poller: {poller.polls} polls, "
        f"{len(poller.seen)} file versions seen ({len(twice)} output(s) "
        f"replaced whole by a task run again: {', '.join(twice) or 'none'}), none partial or temporary"
    )


# ------------------------------------------------------------------------- GPU resource annotation


def test_gpu_workers_only_take_gpu_tasks(sample_archive, tmp_path, prefect_server, figures):
    """Two workers, only w0 with the resource GPU=1 (no GPU needed: Dask resources are labels): with
    gpu_workers every model/encoding task runs on w0, though w1 is idle beside it."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    shutil.copy(sample_archive / "photos/astronaut.jpg", src / "a/astronaut.jpg")
    shutil.copy(sample_archive / "cameras/parking/clip_002.mkv", src / "a/parking.mkv")
    dest = tmp_path / "out"
    with ExternalCluster(tmp_path, [{"name": "w0", "resources": "GPU=1"}, {"name": "w1"}]) as cluster:
        t0 = time.time()
        summary = run_anonymize(
            AnonymizeConfig.of(src=str(src), dest=str(dest), dask_address=cluster.address, gpu_workers=True)
        )
        work = _by_worker(cluster.stream(t0), cluster.addresses)
    assert summary["ok"] == 2 and summary["failed"] == 0, summary
    gpu = {name: sum(c[p] for p in GPU_TASKS) for name, c in work.items()}
    assert gpu["w0"] >= 3 and gpu["w1"] == 0, work  # detect-chunk, finish-video, anonymize-image: all on w0
    figures.append(
        f"gpu_workers on a cluster where only w0 has GPU=1: model/encoding tasks per worker {gpu}; "
        + "; ".join(f"{n}: {dict(c)}" for n, c in work.items())
    )


# ---------------------------------------------------------------------------------- a tls:// scheduler


def _throwaway_tls(tmp: Path) -> tuple[str, str, str]:
    """A CA and one certificate it signed (for 127.0.0.1, server and client use), EC P-256, valid for
    a day: (CA file, certificate file, key file). Every process of the test cluster and the client use it."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, key, issuer, issuer_key, ca: bool):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            b = b.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        return b.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("faceveil test CA", ca_key, "faceveil test CA", ca_key, True)
    leaf = cert("faceveil dask", key, "faceveil test CA", ca_key, False)
    paths = tmp / "ca.pem", tmp / "dask.pem", tmp / "dask.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return tuple(str(p) for p in paths)


def test_tls_scheduler(sample_archive, tmp_path, prefect_server, capsys, figures):
    """`faceveil anonymize --dask-address tls://...` with --dask-tls-ca/-cert/-key: the scheduler and
    workers speak TLS only (a plain tcp:// client is refused), the archive completes on both workers;
    without the certificates the command stops with a usage error before anything starts."""
    from faceveil.cli import EXIT_USAGE, main

    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    shutil.copy(sample_archive / "photos/astronaut.jpg", src / "a/astronaut.jpg")
    shutil.copy(sample_archive / "cameras/lobby/clip_001.mp4", src / "a/lobby.mp4")
    dest = tmp_path / "out"
    ca, cert, key = _throwaway_tls(tmp_path)
    with ExternalCluster(tmp_path, [{"name": "w0"}, {"name": "w1"}], tls=(ca, cert, key)) as cluster:
        assert cluster.address.startswith("tls://")
        with pytest.raises(Exception):  # the scheduler speaks TLS only
            from distributed import Client

            Client(cluster.address.replace("tls://", "tcp://"), timeout=3).close()
        assert main(["anonymize", str(src), str(dest), "--dask-address", cluster.address, "--quiet"]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert "is a TLS scheduler" in err and "--dask-tls-ca" in err and "DASK_DISTRIBUTED__COMM__TLS__CA_FILE" in err
        assert not dest.exists()
        t0 = time.time()
        code = main(
            [
                "anonymize",
                str(src),
                str(dest),
                "--dask-address",
                cluster.address,
                "--dask-tls-ca",
                ca,
                "--dask-tls-cert",
                cert,
                "--dask-tls-key",
                key,
                "--quiet",
            ]
        )
        seconds = time.time() - t0
        work = _by_worker(cluster.stream(t0), cluster.addresses)
    assert code == 0, capsys.readouterr()
    media = _media(dest)
    assert len(media) == 2 and set(media.status) == {"ok"}
    assert _faces(src / "a/lobby.mp4") > 0 and _faces(dest / "a/lobby.mp4") == 0
    tasks = {name: sum(c.values()) for name, c in work.items()}
    assert sum(tasks.values()) >= 3, work
    figures.append(
        f"tls:// Dask scheduler + 2 workers (throwaway CA): 2 media anonymized in {seconds:.1f} s; "
        f"tasks per worker {tasks}"
    )
