"""Where the models run: onnxruntime providers chosen in one place, CUDA first when there, the CPU
otherwise, $FACEVEIL_DEVICE to force one; and what a session or a media row says it ran on."""

import pytest

from faceveil.models import device
from faceveil.models.device import combine, device_name, onnx_providers, session_device

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_BUILD = ["AzureExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv(device.ENV, raising=False)


def test_cuda_first_when_onnxruntime_has_it():
    assert onnx_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert onnx_providers(list(reversed(GPU_BUILD))) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]  # order is ours
    assert device_name(GPU_BUILD) == "cuda"


def test_cpu_only_build_picks_the_cpu():
    assert onnx_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert onnx_providers(CPU_BUILD) == ["CPUExecutionProvider"]  # providers it does not know are left out
    assert device_name(CPU_BUILD) == "cpu"


@pytest.mark.parametrize("value", ["cpu", "CPU", " cpu "])
def test_env_override_forces_the_cpu(monkeypatch, value):
    monkeypatch.setenv(device.ENV, value)
    assert onnx_providers(GPU_BUILD) == ["CPUExecutionProvider"]
    assert device_name(GPU_BUILD) == "cpu"


def test_env_cuda_insists_and_auto_chooses(monkeypatch):
    monkeypatch.setenv(device.ENV, "cuda")
    assert onnx_providers(GPU_BUILD)[0] == "CUDAExecutionProvider"
    with pytest.raises(RuntimeError, match="no CUDAExecutionProvider"):
        onnx_providers(CPU_BUILD)
    monkeypatch.setenv(device.ENV, "auto")
    assert device_name(GPU_BUILD) == "cuda" and device_name(CPU_BUILD) == "cpu"
    monkeypatch.setenv(device.ENV, "gpu0")
    with pytest.raises(ValueError, match="FACEVEIL_DEVICE"):
        onnx_providers(GPU_BUILD)


def test_this_machine_and_its_sessions_agree():
    """The real onnxruntime here: the detectors' sessions ask for what onnx_providers says, and a
    session reports the device it really got (a CUDA provider without a card falls back to the CPU)."""
    import onnxruntime as ort

    from faceveil.models.detectors import DetectorSettings, create_detector

    wanted = onnx_providers()
    assert wanted == onnx_providers(ort.get_available_providers()) and wanted[-1] == "CPUExecutionProvider"
    det = create_detector("centerface", DetectorSettings(threads=1))
    got = det._sess.get_providers()
    assert got[0] in wanted and det.device == session_device(det._sess) == (
        "cuda" if got[0] == "CUDAExecutionProvider" else "cpu"
    )


class _Session:
    def __init__(self, providers):
        self.providers = providers

    def get_providers(self):
        return self.providers


def test_session_device_and_combine():
    assert session_device(_Session(["CUDAExecutionProvider", "CPUExecutionProvider"])) == "cuda"
    assert session_device(_Session(["CPUExecutionProvider"])) == "cpu"
    assert combine(["cuda", "cuda"]) == "cuda"
    assert combine(["cuda", "cpu"]) == "cpu"  # a media is "cuda" only when every part of its detection was
    assert combine([]) == "cpu"
