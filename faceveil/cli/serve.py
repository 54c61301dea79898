"""`faceveil serve [--config FILE]`: the scheduled runs of one archive (flows/service.py), until
Ctrl-C or SIGTERM; then everything it started is stopped."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from faceveil.cli.exits import EXIT_MEDIA_FAILED, EXIT_OK, EXIT_USAGE


class _Stop(Exception):
    pass


def _raise_stop(signum, _frame):
    raise _Stop(signal.Signals(signum).name)


def _serve(args) -> int:
    from faceveil.config_file import load_config_file
    from faceveil.flows.key_refs import describe, env_names, resolve_key
    from faceveil.flows.service import DEFAULT_PREFECT_FILE, Service

    config_path = args.config or os.environ.get("FACEVEIL_CONFIG")
    if not config_path:
        raise ValueError("serve needs the archive's config file: --config FILE (or $FACEVEIL_CONFIG)")
    file = load_config_file(config_path)  # a bad file stops here, before anything starts
    prefect_file = Path(args.prefect_file) if args.prefect_file else DEFAULT_PREFECT_FILE
    if not prefect_file.is_file():
        raise FileNotFoundError(f"{prefect_file}: no deployments file (pass --prefect-file)")
    service = Service(
        config_path,
        prefect_file,
        port=args.port,
        worker=args.worker,
        key_env=env_names(file.key_ref),
        restore=file.restore_deploy,
    )

    def say(line: str) -> None:
        print(f"faceveil serve: {line}", flush=True)

    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    code = EXIT_OK
    try:
        service.start(say)
        if file.needs_key:  # checked once here (a Prefect secret block needs the API up); the runs read it themselves
            say(f"key: {describe(file.key_ref)}, fingerprint {resolve_key(file.key_ref).fingerprint}")
        say(f"config: {Path(config_path).resolve()} ({file.settings.get('src')} -> {file.settings.get('dest')})")
        if file.restore_deploy:
            say(f"restore deployment: out must lie inside {', '.join(file.restore_roots)}")
        say("ready; Ctrl-C or SIGTERM stops the worker and the server")
        while (why := service.exited()) is None:
            time.sleep(1)
        say(why)
        code = EXIT_MEDIA_FAILED
    except _Stop as s:
        say(f"{s}: stopping")
    except RuntimeError as e:  # a server, deploy or worker that did not start
        say(f"error: {e}")
        code = EXIT_USAGE
    finally:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C does not cut the stop short
        service.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    say("stopped")
    return code
