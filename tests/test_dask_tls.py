"""Which certificates the Dask client takes to a tls:// scheduler (flows/dask_cluster.dask_tls_files): the ones
given, else Dask's configuration; clear errors for a tls:// address without them, for certificates
with a tcp:// address, and for a missing file. No cluster here (tests/flows/test_dask_cluster.py
runs one with TLS)."""

import dask
import pytest

from faceveil.cli import EXIT_USAGE, main
from faceveil.config import AnonymizeConfig
from faceveil.flows.dask_cluster import dask_tls_files
from faceveil.config_file import load_config_file


@pytest.fixture
def files(tmp_path):
    paths = []
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN X-----\n")
        paths.append(str(tmp_path / name))
    return paths


def test_given_files_or_dask_config(files):
    ca, cert, key = files
    assert dask_tls_files(None) is None and dask_tls_files("tcp://h:8786") is None
    assert dask_tls_files("tls://h:8786", ca, cert, key) == (ca, cert, key)
    assert dask_tls_files("tls://h:8786", ca, cert) == (ca, cert, None)  # the key inside the certificate file
    with dask.config.set(
        {
            "distributed.comm.tls.ca-file": ca,
            "distributed.comm.tls.client.cert": cert,
            "distributed.comm.tls.client.key": key,
        }
    ):
        assert dask_tls_files("tls://h:8786") == (ca, cert, key)
        assert dask_tls_files("tls://h:8786", cert=key) == (ca, key, key)  # a given file wins


@pytest.mark.parametrize(
    "address, given, message",
    [
        (
            "tls://h:8786",
            (None, None, None),
            "tls://h:8786 is a TLS scheduler, and the client has no CA file and no client certificate",
        ),
        ("tls://h:8786", ("ca", None, None), "the client has no client certificate: give --dask-tls-ca"),
        ("tcp://h:8786", ("ca", None, None), "--dask-tls-ca given, but the Dask scheduler is tcp://h:8786"),
        (
            None,
            (None, "cert", "key"),
            "--dask-tls-cert, --dask-tls-key given, but the Dask scheduler is a local cluster",
        ),
    ],
)
def test_clear_errors(files, address, given, message):
    paths = dict(zip(("ca", "cert", "key"), files))
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        dask_tls_files(address, *(paths[g] if g else None for g in given))


def test_missing_file(files, tmp_path):
    with pytest.raises(ValueError, match="the Dask TLS client certificate .*nope.pem is not a file"):
        dask_tls_files("tls://h:8786", files[0], str(tmp_path / "nope.pem"))


def test_config_file_keys_are_paths_relative_to_the_file(tmp_path):
    (tmp_path / "archive.toml").write_text(
        'src = "in"\ndest = "out"\ndask_address = "tls://h:8786"\n'
        'dask_tls_ca = "tls/ca.pem"\ndask_tls_cert = "/etc/c.pem"\n'
    )
    config = load_config_file(tmp_path / "archive.toml").anonymize_config()
    assert config.cluster.dask_tls == (str(tmp_path / "tls/ca.pem"), "/etc/c.pem", None)


def test_cli_without_certificates_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    code = main(["anonymize", str(tmp_path / "src"), str(tmp_path / "out"), "--dask-address", "tls://127.0.0.1:1"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "faceveil: error: tls://127.0.0.1:1 is a TLS scheduler" in err and "--dask-tls-cert FILE" in err
    assert not (tmp_path / "out").exists()
    assert AnonymizeConfig.of(src="a", dest="b").cluster.dask_tls == (None, None, None)
