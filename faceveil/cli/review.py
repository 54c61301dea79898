"""`faceveil review DEST`: the review page for what the leak gate withheld, served on 127.0.0.1 only
with a one-time token in its URL (faceveil/review). With the key (--key, $FACEVEIL_KEY or
--passphrase) the reviewer may also look at original frames, add missed faces, release or keep
withheld media, each logged before it acts; without it the page only shows anonymized frames."""

from __future__ import annotations

import os
import socket
import tempfile

from faceveil.cli.exits import EXIT_OK


def add_arguments(p) -> None:
    p.add_argument("archive", metavar="DEST", help="an anonymized archive (folder or s3://)")
    p.add_argument(
        "--state",
        default=None,
        metavar="DIR",
        help="the archive's private state root (default: found beside DEST, as for every keyed command)",
    )
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument(
        "--key",
        default=None,
        help="key file (from `faceveil keygen`); default: $FACEVEIL_KEY; "
        "without a key the page only shows anonymized frames",
    )
    p.add_argument("--passphrase", action="store_true", help="derive the key from a passphrase (as for restore)")


def keyed_review(args):
    """The Review of the archive `args` names, with its key when one is given (checked against its
    vault, when it has one, before the page opens)."""
    from faceveil.cli.keyed import _master, archive_state
    from faceveil.review.app import Review
    from faceveil.review.frames import Archive
    from faceveil.storage.keys import ENV_VAR
    from faceveil.storage.paths import Location
    from faceveil.storage.vault import check_master
    from faceveil.storage.vault_control import read_keyinfo

    state = archive_state(args)
    if not state.exists("media"):
        raise FileNotFoundError(
            f"{state.display('media')}: no media manifest (is {args.archive} an anonymized archive?)"
        )
    master = None
    if args.key or args.passphrase or os.environ.get(ENV_VAR):
        master, _ = _master(args, state)
        if read_keyinfo(state) is not None:
            check_master(state, master)
    scratch = tempfile.mkdtemp(prefix="faceveil-review-")
    return Review(Archive(Location(args.archive), state, scratch), master)


def review(args) -> int:
    import uvicorn

    from faceveil.review.app import create_app, new_token

    rv, token = keyed_review(args), new_token()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))  # loopback only
    port = sock.getsockname()[1]
    print(f"review page: http://127.0.0.1:{port}/?token={token}", flush=True)
    print(
        "("
        + (
            "with the key: originals and actions are logged in the access log"
            if rv.master
            else "without the key: anonymized frames only"
        )
        + "; Ctrl-C stops it)",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(rv, token), log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return EXIT_OK
