"""Frame plans: which settings each frame of a dataset has, derived from its index alone.

A plan turns a frame index into a `Frame`: the nanoBragg options that, appended to the base
command line, make that frame's image as an ordinary single run (`Frame.args`), and the same
values already resolved (phi, noise seed, orientation, per-shot values) for the in-process
renderer. Nothing depends on which frames were rendered before, so any range of frames can be
rendered by any process (resume, several workers, a cluster) with identical results.

Rotation series (`-frames N`): frame i has -phi (phi + i*osc) and -seed (seed + i).
Serial stills (`-stills N`): shot i has a uniformly random orientation drawn from
(misset_seed, i), given as -misset angles, and -seed (seed + i), plus the per-shot values of a
`-shots` description (crystal size, mosaic spread, fluence, spectrum).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..rng import umat2misset

RTD = 180.0 / math.pi


def fmt(x: float) -> str:
    """A frame value as written on its command line: 15 significant digits, so that the
    decimal a user would type (0.3, not 0.30000000000000004) is the value; frames use float(fmt(x)),
    which reads back from this text to the same double."""
    return "%.15g" % x


@dataclass(frozen=True)
class Frame:
    """One frame of a plan.

    index: 0-based frame (shot) number; files and NeXus frames are numbered index + 1.
    args: nanoBragg options appended to the base command to make this frame as a single run.
    phi_deg: the frame's starting phi (degrees); seed: its -seed value (noise).
    misset_deg: the still's orientation as -misset angles (degrees), None for a rotation frame.
    shot: per-shot values from a -shots description (see datasets.shots), empty for none.
    """

    index: int
    args: tuple
    phi_deg: float
    seed: int
    misset_deg: tuple | None = None
    shot: dict = field(default_factory=dict)


@dataclass
class FramePlan:
    """Settings of every frame of a rotation series ("rotation") or of serial stills ("stills").

    phi_deg / osc_deg: the base command's starting phi and oscillation (degrees); seed: its noise
    seed (the -seed value; frame i uses seed + i); misset_seed: the stills' orientation seed;
    shots: a datasets.shots.ShotTable giving per-shot values, or None."""

    kind: str
    count: int
    phi_deg: float = 0.0
    osc_deg: float = 0.0
    seed: int = 0
    misset_seed: int = 0
    shots: object = None

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return (self.frame(i) for i in range(self.count))

    def frame(self, index: int) -> Frame:
        if not 0 <= index < self.count:
            raise IndexError(f"frame {index} is outside 0..{self.count - 1}")
        seed = self.seed + index
        if self.kind == "rotation":
            phi = float(fmt(self.phi_deg + index * self.osc_deg))
            return Frame(index, ("-phi", fmt(phi), "-seed", str(seed)), phi, seed)
        angles = tuple(float(fmt(a)) for a in still_misset_deg(self.misset_seed, index))
        shot = self.shots.shot(index) if self.shots is not None else {}
        args = ("-misset", *(fmt(a) for a in angles), "-seed", str(seed))
        if self.shots is not None:
            args = args + tuple(self.shots.args(index, shot))
        return Frame(index, args, self.phi_deg, seed, angles, shot)

    def frame_args(self, frame: Frame, folder: str) -> list:
        """frame.args with the frame's input files (a shot's spectrum) written into `folder`."""
        files = self.shots.files(frame.index, frame.shot, folder) if self.shots is not None else {}
        return [files.get(a, a) for a in frame.args]

    def describe(self) -> dict:
        """The plan's defining numbers (recorded in every output file)."""
        return {"kind": self.kind, "count": self.count, "phi_deg": self.phi_deg, "osc_deg": self.osc_deg,
                "seed": self.seed, "misset_seed": self.misset_seed}


def uniform_rotation(seed: int, index: int) -> np.ndarray:
    """A rotation matrix uniform on SO(3) (a normalised 4-D Gaussian quaternion), from (seed, index) only."""
    gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence([abs(int(seed)), int(seed < 0), int(index)])))
    w, x, y, z = gen.standard_normal(4) / 1.0
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def still_misset_deg(seed: int, index: int) -> tuple:
    """The -misset angles (degrees, rotations about x, then y, then z) of still `index`."""
    return tuple(a * RTD for a in umat2misset(uniform_rotation(seed, index)))
