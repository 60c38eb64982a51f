"""Render the frames of a plan in one process: models and structure factors set up once.

    renderer = Renderer(base_args, plan)        # builds the simulation once (prints nothing)
    for result in renderer.frames(range(10, 20)):
        result.photons, result.counts            # the frame's -floatfile and -noisefile images

A rotation frame reuses the one Simulation (only its starting phi changes) and therefore the
compiled kernel bound to it and the per-pixel factors (factor_cache) that no frame changes: a
frame evaluates only its orientations' lattice sum; a still (new orientation, per-shot size, mosaic, fluence or
spectrum) gets its models rebuilt from the base arguments plus the frame's own through the same
factories as a single run (~10 ms) with the structure factors read once, so each frame is
exactly the image of `nanoBragg <base args> <frame.args>`.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .. import background_noise, rng
from ..cnum import atof
from ..errors import UsageError
from ..factor_cache import FactorCache
from ..settings import RTD
from .plan import Frame, FramePlan


def _quiet(text: str) -> None:
    pass


@dataclasses.dataclass
class FrameResult:
    """One rendered frame.

    photons: float32 (spixels, fpixels), the image -floatfile would hold; counts: uint16, the
    -noisefile image (Poisson noise from the frame's seed, ADC offset added), None with -nonoise;
    settings: the frame's resolved nanoBragg settings (for file headers); overloads: saturated pixels."""

    frame: Frame
    photons: np.ndarray
    counts: np.ndarray | None
    settings: object
    overloads: int = 0


@dataclasses.dataclass
class _Rendered:
    """A frame between its render and its noise: its settings, noise shuffle table and float image."""

    frame: Frame
    settings: object
    table: object
    photons: np.ndarray


class Renderer:
    """The models of a dataset, set up once from the base nanoBragg arguments.

    args: the nanoBragg options shared by all frames (without the dataset options); plan: the
    FramePlan. Files named by args (-hkl, -mat, -sourcefile ...) are read relative to the current
    folder, once. `frames(indices)` yields FrameResults; `render(frame)` renders one Frame."""

    def __init__(self, args, plan: FramePlan, say=_quiet, progress=None, write_fdump: bool = True):
        from ..cli import load_settings, print_report
        from ..setup import build

        self.args, self.plan, self.progress = list(args), plan, progress
        self._scratch = None
        settings = load_settings(self.args + plan.frame_args(plan.frame(0), self.scratch()), say)
        if not write_fdump:
            settings = dataclasses.replace(settings, dumpfile=os.path.join(self.scratch(), "Fdump.bin"))
        self.sim = self.last_sim = build(settings)
        print_report(self.sim.report, say)
        self.settings = self.sim.settings  # the resolved settings of frame 0
        if self.settings.panel_count > 1:
            raise UsageError("datasets: multi-panel detectors are not supported yet (one panel per frame)")
        self._background = None
        # per-shot crystal sizes are baked into the compiled kernel: one build per size would not pay
        shots = plan.shots.config.get("crystal", {}) if plan.shots is not None else {}
        self.compile_frames = plan.count if not {"N", "size_um"} & set(shots) else 1
        # per-pixel factors (geometry, solid angle, polarization) computed once for all frames that
        # share them: a frame then evaluates only its orientations' lattice sum
        self.factor_cache = FactorCache()
        tune(self.sim, self.compile_frames, self.factor_cache)
        # the shuffle table as the noise generator of a single run finds it (after misset/mosaic draws)
        self.noise_table = self.settings.rng_table.copy()

    def frames(self, indices):
        for index in indices:
            yield self.render(self.plan.frame(index))

    def render(self, frame: Frame) -> FrameResult:
        return self.finish(self.photons(frame))

    def photons(self, frame: Frame) -> "_Rendered":
        """The frame's float image (the render), without its noise: finish() adds that."""
        if self.plan.kind == "rotation":
            v, sim, table = self._rotation_frame(frame)
        else:
            v, sim, table = self._rebuilt_frame(frame)
        self.last_sim = sim
        with torch.no_grad():
            image = sim.run(progress=self.progress)
        photons = self._with_background(v, sim, image.detach().to("cpu", torch.float32).numpy())
        return _Rendered(frame, v, table, photons)

    @staticmethod
    def finish(rendered: "_Rendered") -> FrameResult:
        """The FrameResult of a rendered frame: its noise image drawn (from the frame's own seed and
        shuffle table, so frames may be finished on another thread while the next one renders)."""
        v, photons = rendered.settings, rendered.photons
        counts, overloads = None, 0
        if v.calculate_noise:
            # -psf, -readout_noise ...: noisify's detector model, on this (spare) thread alone
            model = background_noise.noise_function(v, spare_thread=True)
            if model is not None:
                counts, _, overloads = model(photons)
            else:
                counts, _, overloads = rng.noise_image(photons, v.seed, v.adc_offset, tuple(v.roi),
                                                       table=rendered.table)
        return FrameResult(rendered.frame, photons, counts, v, overloads)

    def _with_background(self, v, sim, photons):
        """-background: the amorphous background added as a single run adds it, made again only
        when what it depends on changes (a still's own spectrum or fluence; a rotation: never)."""
        if v.background is None:
            return photons
        key = background_noise.background_key(v, sim)
        if self._background is None or not background_noise.same_background(self._background[0], key):
            with torch.no_grad():
                image = background_noise.background_image(v, sim).to("cpu", torch.float32).numpy()
            self._background = (key, image)
        return (photons.astype(np.float32) + self._background[1]).astype(np.float32)

    def _rotation_frame(self, frame):
        """Only phi and the noise seed change: read exactly as the parser reads -phi and -seed."""
        v = dataclasses.replace(self.settings, phi0=atof(frame.args[frame.args.index("-phi") + 1]) / RTD,
                                seed=-int(frame.seed))
        self.sim.crystal.phi0 = v.phi0
        return v, self.sim, self.noise_table.copy()

    def _rebuilt_frame(self, frame):
        from ..cli import load_settings
        from ..setup import build

        v = load_settings(self.args + self.plan.frame_args(frame, self.scratch()), _quiet)
        # a single run's Fdump.bin is written once
        v = dataclasses.replace(v, dumpfile=os.path.join(self.scratch(), "Fdump.bin"))
        sim = build(v, structure_factors=self.settings.structure_factors)
        tune(sim, self.compile_frames, self.factor_cache)
        return sim.settings, sim, sim.settings.rng_table

    def scratch(self) -> str:
        """A private folder for per-frame input files (spectra), removed by close()."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="nanobragg-frames-")
        return self._scratch

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tune(sim, frames: int, factor_cache=None) -> None:
    """Engine choices for a whole dataset: the frames' shared factor cache, the compiled kernel
    when all frames' work together pays for it (a single run decides on one frame's work; both
    engines give the same image to the rounding of a reordered sum, bit-identical on the benchmark
    series), and compiled chunks of whole rows that divide the detector, so that no chunk is
    padded with unused pixels."""
    from ..simulator import COMPILE_MIN_WORK, FUSED_BUDGET_FACTOR, compile_available

    sim.factor_cache = factor_cache
    d = sim.detector
    rows, cols = (r.numel() for r in sim.rendered_ranges())
    terms = sim.terms_per_pixel()
    if sim.use_compile is None and frames * d.spixels * d.fpixels * terms >= COMPILE_MIN_WORK and compile_available():
        sim.use_compile = True
    if sim.use_compile is not True:
        return  # the eager engine keeps its own chunking
    per_chunk = max(1, min(rows, sim.chunk_size(fused=True) // max(cols, 1)))
    while rows % per_chunk:
        per_chunk -= 1
    sim.term_budget = max(1, -(-per_chunk * cols * terms // FUSED_BUDGET_FACTOR))


def render_frames(renderer: Renderer, indices, sinks, on_frame=None) -> int:
    """Render `indices` in order and hand each FrameResult to every sink (`sink.write(result)`).

    Frames are streamed: at most two frames' images are held at a time. A frame's noise is drawn on
    a second thread while the next frame renders (the noise generator is sequential and releases
    the GIL); frames are written in order, on the calling thread. on_frame(count) is called after
    each frame is written everywhere. Returns the number of frames written."""
    done = 0

    def write(result):
        nonlocal done
        for sink in sinks:
            sink.write(result)
        done += 1
        if on_frame is not None:
            on_frame(done)

    with ThreadPoolExecutor(1, thread_name_prefix="nanobragg-noise") as pool:
        pending = None
        try:
            for index in indices:
                rendered = renderer.photons(renderer.plan.frame(index))
                previous = pending.result() if pending is not None else None
                pending = pool.submit(renderer.finish, rendered)
                if previous is not None:  # written while this frame's noise is drawn
                    write(previous)
            if pending is not None:
                write(pending.result())
        finally:
            if pending is not None:
                pending.cancel()
    return done
