"""The precision OpenVINO compiles CenterFace at is remembered per weights, OpenVINO version and CPU, so a
run with nothing new hashes the detector's weights id without compiling the graph."""

import types

import pytest

from faceveil.models.detectors.bf16 import compiled_precision

openvino = pytest.importorskip("openvino")


def _session(calls: list, precision: str = "bf16"):
    def make():
        calls.append(1)
        return types.SimpleNamespace(precision=precision)

    return make


def test_compiled_once_then_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEVEIL_HOME", str(tmp_path))
    calls: list = []
    first = compiled_precision("a" * 64, _session(calls))
    again = compiled_precision("a" * 64, _session(calls, precision="f32"))  # would say otherwise if compiled
    assert first == again and first[0] == "bf16" and len(calls) == 1
    assert first[1] == openvino.__version__.split("-")[0]  # the version the weights id always named
    other = compiled_precision("b" * 64, _session(calls, precision="f32"))  # other weights: compiled
    assert other[0] == "f32" and len(calls) == 2


def test_a_corrupt_or_unwritable_cache_only_costs_a_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEVEIL_HOME", str(tmp_path))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "openvino-precision.json").write_text("[not json")
    calls: list = []
    assert compiled_precision("a" * 64, _session(calls))[0] == "bf16" and len(calls) == 1
    assert compiled_precision("a" * 64, _session(calls))[0] == "bf16" and len(calls) == 1  # rewritten whole
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("FACEVEIL_HOME", str(blocked))  # its cache folder cannot be made
    assert compiled_precision("a" * 64, _session(calls))[0] == "bf16" and len(calls) == 2
