#!/usr/bin/env python3
"""What -background and noisify's detector model add to each frame of a dataset, against C's
per-frame pipeline (nanoBragg.c, nonBragg.c and noisify.c).

    dataset_detector.py [--repeats 5]

Ours, in one process, as a series makes each frame (datasets/render.py): W1's frame (-phi 0 -osc
0.1 -seed 1) and the water background (`-background water.stol -background_thick 0.00000001`, made
once per series) rendered once; then, timed, a frame's noise without the options (nanoBragg's
Poisson noise image) and with them (the background added, then noisify's model: -psf gauss
-psf_fwhm 150 -readout_noise 2, default -calibration 0.03) on the series' noise thread alone, as
Renderer.finish draws it. The render is the same either way, so the difference is what the
options add. CPU seconds of the whole process (the plain noise draws on a worker thread); the
figure excludes contention with the next frame's render, which runs beside it in a series.
C (with $NB_C_BIN, $NB_NONBRAGG_BIN, $NB_NOISIFY_BIN): the same frame as C makes it: its float image
from nanoBragg.c (-nonoise: noisify makes the noise), the water background of the same geometry
from nonBragg.c, noisify.c on their summed float images; CPU s (user + system) of each. Prints
one JSON record; the medians over --repeats are the figures.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
W1 = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 1024"
OPTIONS = "-background water.stol -background_thick 0.00000001 -psf gauss -psf_fwhm 150 -readout_noise 2"
NONBRAGG = "-stol water.stol -lambda 6.2 -distance 100 -detpixels 1024 -thick 0.00000001 -nonoise -nopgm"
NOISIFY = "-floatfile sum.bin -detpixels 1024 -pixel 0.1 -distance 100 -psf gauss -psf_fwhm 150 -readout_noise 2"


def _timed(cmd, cwd):
    """(wall s, CPU s of the child) of one command, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu(fn):
    start = time.process_time()
    fn()
    return time.process_time() - start


def ours(work, repeats):
    """CPU s of a frame's noise without and with the options, `repeats` times each, alternating."""
    import torch

    from nanobrag_torch import background_noise, rng
    from nanobrag_torch.cli import load_settings
    from nanobrag_torch.setup import build

    os.chdir(work)
    v = load_settings(W1.split() + "-phi 0 -osc 0.1 -seed 1".split() + OPTIONS.split(), lambda text: None)
    sim = build(v, write_fdump=False)
    v = sim.settings
    with torch.no_grad():
        image32 = sim.run().detach().to("cpu", torch.float32).numpy()
        background = background_noise.background_image(v, sim).to("cpu", torch.float32).numpy()
    noise = background_noise.noise_function(v, spare_thread=True)

    def plain():
        rng.noise_image(image32, v.seed, v.adc_offset, tuple(v.roi), table=v.rng_table.copy())

    def with_options():
        noise((image32.astype(np.float32) + background).astype(np.float32))

    plain(), with_options()  # warm: compiled loops loaded
    runs = [(_cpu(plain), _cpu(with_options)) for _ in range(repeats)]
    return {"plain_cpu_s": [p for p, _ in runs], "with_options_cpu_s": [w for _, w in runs],
            "background_photons_mean": float(background.mean())}


def c_frame(work):
    """(wall, CPU) of each C program for one frame: nanoBragg.c, nonBragg.c, noisify.c."""
    bragg = _timed([os.environ["NB_C_BIN"], *W1.split(), "-phi", "0", "-osc", "0.1", "-seed", "1",
                    "-floatfile", "bragg.bin", "-nopgm", "-nonoise"], work)
    water = _timed([os.environ["NB_NONBRAGG_BIN"], *NONBRAGG.split(), "-floatfile", "water.bin"], work)
    total = np.fromfile(work / "bragg.bin", np.float32) + np.fromfile(work / "water.bin", np.float32)
    total.astype(np.float32).tofile(work / "sum.bin")
    noise = _timed([os.environ["NB_NOISIFY_BIN"], *NOISIFY.split(), "-seed", "1", "-nopgm"], work)
    return bragg, water, noise


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="nb-dataset-detector-"))
    here = os.getcwd()
    try:
        shutil.copy(Path(os.environ.get("NB_GOLDEN_AUX_DIR", HERE.parent.parent / "shared/golden_aux"))
                    / "fixtures/water.stol", work)
        load = [os.getloadavg()[0]]
        record = ours(work, a.repeats)
        plain, with_options = (statistics.median(record[k]) for k in ("plain_cpu_s", "with_options_cpu_s"))
        record.update(added_cpu_per_frame=with_options - plain, load_1min=load)
        if all(k in os.environ for k in ("NB_C_BIN", "NB_NONBRAGG_BIN", "NB_NOISIFY_BIN")):
            c_runs = [c_frame(work) for _ in range(max(1, min(a.repeats, 3)))]
            per_frame = statistics.median(sum(cpu for _, cpu in runs) for runs in c_runs)
            record.update(c_runs=c_runs, c_cpu_per_frame=per_frame, ratio=(with_options - plain) / per_frame)
        load.append(os.getloadavg()[0])
        print(json.dumps(record))
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
