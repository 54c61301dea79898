"""The `faceveil` command: one subcommand per job (grammar in parser.py; the commands in runs.py
and keyed.py)."""

from __future__ import annotations

import os
import sys

from faceveil.cli.exits import EXIT_CONTRACT, EXIT_OK, EXIT_USAGE  # noqa: F401  (EXIT_OK: for callers)
from faceveil.cli.check import check as _check
from faceveil.cli.keyed import _access_log, _calibrate, _forget, _keygen, _log_key, _restore, _rotate_key, _search
from faceveil.cli.parser import build_parser
from faceveil.cli.publish import publish as _publish
from faceveil.cli.review import review as _review
from faceveil.cli.runs import _anonymize, _evaluate, _migrate_state, _report, _sample
from faceveil.cli.serve import _serve


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    if args.command in ("anonymize", "pulse"):
        args.argv = argv  # which flags were given (they override --config)
    if not getattr(args, "verbose", False):
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    from faceveil.offline import set_offline_env

    set_offline_env()
    handlers = {
        "anonymize": _anonymize,
        "pulse": _anonymize,
        "keygen": _keygen,
        "restore": _restore,
        "forget": _forget,
        "rotate-key": _rotate_key,
        "search": _search,
        "calibrate": _calibrate,
        "access-log": _access_log,
        "audit-log": _access_log,
        "log-key": _log_key,
        "sample": _sample,
        "report": _report,
        "migrate-state": _migrate_state,
        "evaluate": _evaluate,
        "serve": _serve,
        "publish": _publish,
        "review": _review,
        "check": _check,
    }
    from faceveil.validation.errors import ContractError

    try:
        return handlers[args.command](args)
    except ContractError as e:
        print(f"faceveil: run failed: {e}", file=sys.stderr)
        return EXIT_CONTRACT
    except (FileNotFoundError, NotADirectoryError, ValueError, PermissionError) as e:
        print(f"faceveil: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("faceveil: interrupted; re-run the same command to finish (finished media are kept)", file=sys.stderr)
        return 130
    except RuntimeError as e:  # an access log that cannot be read or written
        log = sys.modules.get("faceveil.storage.access_log")  # loaded whenever it raised (not imported for this)
        if log is None or not isinstance(e, log.AccessLogError):
            raise
        print(f"faceveil: access log: {e}", file=sys.stderr)
        return EXIT_USAGE


def run() -> None:
    """The console script. Once the command is done and every atexit handler has run, it exits
    without tearing the interpreter down (that alone took ~1 s with Prefect, Dask and onnxruntime
    loaded); everything it writes is committed and flushed before."""
    import atexit

    done: list[int] = []

    def fast_exit() -> None:  # registered first, so it runs after every other atexit handler
        if done:
            import logging

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done[0])

    atexit.register(fast_exit)
    done.append(main())
    sys.exit(done[0])
