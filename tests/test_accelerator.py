"""The simulator on an accelerator (CUDA) against the same simulation on the CPU.

These run where a CUDA device is present (they skip, saying so, elsewhere); NB_TEST_DEVICE=cpu
runs them on the CPU to check the tests themselves. The device's cos/sin differ from glibc's by
an ulp or two, so images are compared to 1e-10 of their maximum (the CPU's compiled and eager
paths agree to 1e-12; float64 leaves eleven digits to spare either way).
"""
import os

import numpy as np
import pytest
import torch

import nanobrag_torch as nb
from nanobrag_torch import cli, simulator

from heavy_still import heavy_still_args, write_hkl

DEVICE = os.environ.get("NB_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="no CUDA device on this machine (NB_TEST_DEVICE=cpu checks these tests)")

HEAVY_STILL = heavy_still_args("small.hkl", 24, 4)


@pytest.fixture(autouse=True)
def folder(tmp_path, tmp_path_factory, monkeypatch):
    write_hkl(tmp_path / "small.hkl", span=8)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NANOBRAGG_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))
    monkeypatch.setitem(simulator._COMPILED, "ok", True)
    return tmp_path


def render(device, compiled, dtype="float64", args=HEAVY_STILL):
    sim = nb.from_args(args, device=device, dtype=dtype)
    sim.use_compile = compiled
    with torch.no_grad():
        image = sim.run()
    assert image.device.type == torch.device(device).type
    return image.cpu(), sim


def assert_same_image(image, reference):
    scale = float(reference.abs().max())
    assert scale > 0
    torch.testing.assert_close(image.double(), reference, rtol=1e-10, atol=1e-10 * scale)


def test_eager_engine_matches_the_cpu():
    reference, _ = render("cpu", False)
    image, _ = render(DEVICE, False)
    assert_same_image(image, reference)


def test_compiled_kernel_matches_the_cpu():
    reference, _ = render("cpu", False)
    image, sim = render(DEVICE, True)
    assert sim.stats["compiled_kernel"] is True, "the compiled path failed on this device and fell back"
    assert_same_image(image, reference)


def test_float32_compiled_kernel_correlates_with_float64():
    reference, _ = render("cpu", False)
    image, sim = render(DEVICE, True, dtype="float32")
    assert sim.stats["compiled_kernel"] is True
    assert image.dtype == torch.float32
    corr = np.corrcoef(image.double().flatten().numpy(), reference.flatten().numpy())[0, 1]
    assert corr > 0.9999999


def test_gradients_match_the_cpu():
    grads = []
    for device in ("cpu", DEVICE):
        sim = nb.from_args(HEAVY_STILL, device=device)
        p = nb.parameters(sim, "distance", "cell", "misset")
        sim.run().sum().backward()
        assert all(v.grad is not None and v.grad.device.type == torch.device(device).type for v in p.values())
        grads.append({k: v.grad.cpu() for k, v in p.items()})
    for name, reference in grads[0].items():
        assert reference.abs().max() > 0, name
        torch.testing.assert_close(grads[1][name], reference, rtol=1e-8, atol=1e-8 * float(reference.abs().max()))


def test_command_line_device_option_writes_the_cpu_image(folder):
    common = HEAVY_STILL + ["-nonoise", "-nopgm", "-noprogress"]
    assert cli.main(common + ["-floatfile", "cpu.bin"]) == 0
    assert cli.main(common + ["-device", DEVICE, "-floatfile", "dev.bin"]) == 0
    cpu = torch.from_numpy(np.fromfile(folder / "cpu.bin", dtype="<f4")).double()
    dev = torch.from_numpy(np.fromfile(folder / "dev.bin", dtype="<f4")).double()
    # the files hold float32: compare to float32 rounding
    torch.testing.assert_close(dev, cpu, rtol=1e-6, atol=1e-6 * float(cpu.abs().max()))
