"""Datasets in one run: rotation series and serial stills, set up once and streamed to disk.

- `plan.FramePlan` maps a frame index to that frame's settings (`Frame`: the nanoBragg options
  that make it as a single run, its phi, noise seed, orientation and per-shot values); seeds
  and orientations come from the frame index alone, so any range of frames renders identically
  in any process.
- `render.Renderer` builds the models once from the base nanoBragg arguments and renders any
  frame; `render.render_frames(renderer, indices, sinks)` renders a range of frames and hands
  each to the output writers (`smv.SMVSeries`, `cbf.CBFSeries`, `nexus.NexusFile`).
- `cli.run` is the command line (-frames, -stills, -frame, -smv, -cbf, -nexus, -resume ...).
"""
from .plan import Frame, FramePlan
from .render import FrameResult, Renderer, render_frames

__all__ = ["Frame", "FramePlan", "FrameResult", "Renderer", "render_frames"]
