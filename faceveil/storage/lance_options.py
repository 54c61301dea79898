"""What LanceDB needs beside a Location: the object-store options of an s3:// one, and SQL string quoting
for its filters."""

from __future__ import annotations

import os

from faceveil.storage.paths import Location


def sql_quote(s: str) -> str:
    """`s` as a single-quoted SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


def lance_storage_options(loc: Location) -> dict[str, str]:
    """LanceDB's object-store options for an s3:// Location: endpoint (FACEVEIL_S3_ENDPOINT or the
    Location's endpoint_url), allow_http for http endpoints, region and keys when given."""
    if loc.is_local:
        return {}
    so = loc.storage_options or {}
    ck = so.get("client_kwargs") or {}
    opts: dict[str, str] = {}
    endpoint = so.get("endpoint_url") or ck.get("endpoint_url") or os.environ.get("FACEVEIL_S3_ENDPOINT")
    if endpoint:
        opts["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            opts["allow_http"] = "true"
    region = ck.get("region_name") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        opts["region"] = region
    if so.get("key") and so.get("secret"):
        opts["aws_access_key_id"], opts["aws_secret_access_key"] = so["key"], so["secret"]
        if so.get("token"):
            opts["aws_session_token"] = so["token"]
    return opts
