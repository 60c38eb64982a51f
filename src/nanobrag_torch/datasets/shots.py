"""-shots FILE.toml: per-shot variation of serial stills (crystal size, mosaic spread, fluence, spectrum).

Every key is optional; a number fixes the value for all shots, a [low, high] pair draws it
uniformly per shot. Draws come from (seed, shot index) alone.

    seed = 42                  # per-shot draws (default: the -misset_seed value)
    [crystal]
    N = [3, 8]                 # unit cells per edge (integers)           -> -N
    size_um = [0.5, 2.0]       # crystal edge in micrometres              -> -xtal_size
    mosaic_deg = [0.0, 0.3]    # mosaic spread in degrees                 -> -mosaic
    mosaic_domains = 10        # mosaic domains                           -> -mosaic_dom
    [beam]
    fluence = [1e23, 1e24]     # photons per m^2                          -> -fluence
    [spectrum]
    kind = "sase"              # "sase": spiky SASE-like spectra from the seed; "file": from `file`
    samples = 16               # wavelengths per shot (equal weights)     -> -sourcefile
    bandwidth_pct = 0.5        # FWHM of the SASE envelope, % of -lambda
    spikes = 20                # mean number of SASE spikes
    spike_width_pct = 0.02     # FWHM of one spike, % of -lambda
    file = "spectra.txt"       # kind = "file": lines "shot lambda_A weight" (shot from 1)

A spectrum is given to the renderer (and to nanoBragg.c by -export_c) as `samples` equal-weight
wavelengths at the quantiles of the shot's spectrum, so nanoBragg.c, which ignores source
weights, renders the same shot; the NeXus file records them as incident_wavelength(_weights).
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from ..errors import InputFileError
from .plan import fmt

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

KEYS = {
    "seed": int,
    "crystal": {"N": "range", "size_um": "range", "mosaic_deg": "range", "mosaic_domains": int},
    "beam": {"fluence": "range"},
    "spectrum": {"kind": str, "samples": int, "bandwidth_pct": float, "spikes": float, "spike_width_pct": float,
                 "file": str},
}
SPECTRUM_DEFAULTS = {"kind": "sase", "samples": 16, "bandwidth_pct": 0.5, "spikes": 20.0, "spike_width_pct": 0.02}
SOURCEFILE = "{shot spectrum}"  # stands for the shot's source file in Frame.args until one is written


def _line_of(text: str, key: str) -> int:
    pattern = re.compile(r"^\s*(\[\s*%s\s*\]|%s\s*=)" % (re.escape(key), re.escape(key)))
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return number
    return 0


def _check(path, text, table, spec, where=""):
    for key, value in table.items():
        name = where + key
        if key not in spec:
            raise InputFileError(f"{path}: line {_line_of(text, key)}: unknown key '{name}' "
                                 f"(known: {', '.join(sorted(spec))})")
        kind = spec[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise InputFileError(f"{path}: line {_line_of(text, key)}: '{name}' must be a [{key}] table")
            _check(path, text, value, kind, name + ".")
        elif not _valid(value, kind):
            raise InputFileError(f"{path}: line {_line_of(text, key)}: bad value for '{name}': {value!r}")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _valid(value, kind) -> bool:
    if kind == "range":
        return _number(value) or (isinstance(value, list) and len(value) == 2 and all(map(_number, value))
                                   and value[0] <= value[1])
    if kind is str:
        return isinstance(value, str)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return _number(value)


class ShotTable:
    """Per-shot values of a -shots description (see the module docstring)."""

    def __init__(self, config: dict, count: int, seed: int, lambda0_A: float, beam, path: str = ""):
        self.config, self.count, self.path = config, count, path
        self.seed = int(config.get("seed", seed))
        self.lambda0_A, self.beam = lambda0_A, np.asarray(beam, dtype=np.float64)
        self.spectrum_cfg = dict(SPECTRUM_DEFAULTS, **config["spectrum"]) if "spectrum" in config else None
        self.spectrum_samples = self.spectrum_cfg["samples"] if self.spectrum_cfg else 0
        self.file_spectra = None
        if self.spectrum_cfg and self.spectrum_cfg["kind"] == "file":
            self.file_spectra = _read_spectra(self.spectrum_cfg.get("file"), path)
            missing = [shot for shot in range(1, count + 1) if shot not in self.file_spectra]
            if missing:  # found before any frame is written
                raise InputFileError(f"{self.spectrum_cfg['file']}: no spectrum for shot {missing[0]}")

    def has_spectra(self) -> bool:
        return self.spectrum_cfg is not None

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([abs(self.seed), int(self.seed < 0),
                                                                            index, stream])))

    def _draw(self, value, index, stream, integer=False):
        if not isinstance(value, list):
            return value
        low, high = value
        gen = self._rng(index, stream)
        return int(gen.integers(int(low), int(high) + 1)) if integer else float(gen.uniform(low, high))

    def shot(self, index: int) -> dict:
        """The values of shot `index` (only those the description varies or fixes)."""
        crystal, beam = self.config.get("crystal", {}), self.config.get("beam", {})
        out = {}
        if "N" in crystal:
            out["N"] = self._draw(crystal["N"], index, 1, integer=True)
        if "size_um" in crystal:
            out["size_um"] = float(fmt(self._draw(crystal["size_um"], index, 2)))
        if "mosaic_deg" in crystal:
            out["mosaic_deg"] = float(fmt(self._draw(crystal["mosaic_deg"], index, 3)))
        if "mosaic_domains" in crystal:
            out["mosaic_domains"] = int(crystal["mosaic_domains"])
        if "fluence" in beam:
            out["fluence"] = float(fmt(self._draw(beam["fluence"], index, 4)))
        if self.spectrum_cfg is not None:
            grid, intensity = self._spectrum(index)
            out["spectrum_A"], out["spectrum"] = grid, intensity
            out["wavelengths_A"] = np.array([float(fmt(x)) for x in quantiles(grid, intensity, self.spectrum_samples)])
            out["weights"] = np.full(self.spectrum_samples, 1.0 / self.spectrum_samples)
        return out

    def _spectrum(self, index: int) -> tuple:
        if self.file_spectra is not None:
            if index + 1 not in self.file_spectra:
                raise InputFileError(f"{self.spectrum_cfg['file']}: no spectrum for shot {index + 1}")
            return self.file_spectra[index + 1]
        return sase_spectrum(self._rng(index, 5), self.lambda0_A, self.spectrum_cfg)

    def args(self, index: int, shot: dict) -> list:
        """The nanoBragg options that give this shot's values."""
        out = []
        if "N" in shot:
            out += ["-N", str(shot["N"])]
        if "size_um" in shot:
            out += ["-xtal_size", fmt(shot["size_um"] / 1000.0)]
        if "mosaic_deg" in shot:
            out += ["-mosaic", fmt(shot["mosaic_deg"])]
        if "mosaic_domains" in shot:
            out += ["-mosaic_dom", str(shot["mosaic_domains"])]
        if "fluence" in shot:
            out += ["-fluence", fmt(shot["fluence"])]
        if "wavelengths_A" in shot:
            out += ["-sourcefile", SOURCEFILE]
        return out

    def files(self, index: int, shot: dict, folder: str) -> dict:
        """Write the shot's input files in `folder`; returns {placeholder argument: path}."""
        if "wavelengths_A" not in shot:
            return {}
        path = os.path.join(folder, "shot_%05d_sources.txt" % (index + 1))
        position = -10.0 * self.beam / np.linalg.norm(self.beam)  # nanoBragg's default source distance
        with open(path, "w") as handle:
            handle.writelines("%.17g %.17g %.17g 1 %.17g\n" % (*position, wl * 1e-10) for wl in shot["wavelengths_A"])
        return {SOURCEFILE: path}


def quantiles(grid, intensity, samples: int) -> np.ndarray:
    """`samples` wavelengths at the (j + 1/2)/samples quantiles of a spectrum on `grid`."""
    w = np.clip(np.asarray(intensity, dtype=np.float64), 0, None)
    cdf = (np.cumsum(w) - w / 2) / w.sum()
    return np.interp((np.arange(samples) + 0.5) / samples, cdf, np.asarray(grid, dtype=np.float64))


def sase_spectrum(gen, lambda0_A: float, cfg: dict, points: int = 512) -> tuple:
    """A spiky SASE-like spectrum: Gaussian spikes with exponential heights under a Gaussian envelope."""
    sigma_env = cfg["bandwidth_pct"] / 100.0 * lambda0_A / 2.3548
    sigma_spike = max(cfg["spike_width_pct"] / 100.0 * lambda0_A / 2.3548, 1e-12)
    count = max(1, int(gen.poisson(cfg["spikes"])))
    centres = gen.normal(lambda0_A, sigma_env, count)
    heights = gen.exponential(1.0, count)
    half = 4 * sigma_env + 4 * sigma_spike
    grid = np.linspace(lambda0_A - half, lambda0_A + half, points)
    intensity = (heights[None, :] * np.exp(-0.5 * ((grid[:, None] - centres[None, :]) / sigma_spike) ** 2)).sum(1)
    return grid, intensity


def _read_spectra(name, toml_path) -> dict:
    if not name:
        raise InputFileError(f"{toml_path}: spectrum kind 'file' needs file = \"...\"")
    path = name if os.path.isabs(name) else os.path.join(os.path.dirname(os.path.abspath(toml_path)), name)
    rows = {}
    try:
        with open(path) as handle:
            for number, line in enumerate(handle, 1):
                text = line.split("#", 1)[0].split()
                if not text:
                    continue
                try:
                    shot, wl, weight = int(text[0]), float(text[1]), float(text[2])
                except (ValueError, IndexError):
                    raise InputFileError(f"{name}: line {number}: expected 'shot lambda_A weight'") from None
                if not (wl > 0 and weight >= 0 and math.isfinite(wl) and math.isfinite(weight)):
                    raise InputFileError(f"{name}: line {number}: wavelength must be positive, weight not negative")
                rows.setdefault(shot, []).append((wl, weight))
    except OSError as exc:
        raise InputFileError(f"{name}: cannot read ({exc.strerror or exc})") from None
    out = {}
    for shot, pairs in rows.items():
        pairs.sort()
        out[shot] = (np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    return out


def load_shots(path: str, count: int, seed: int, lambda0_A: float, beam) -> ShotTable:
    """Read and check a -shots file (unknown keys and bad values are errors naming key and line)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    text = raw.decode("utf-8", "replace")
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{path}: {exc}") from None
    _check(path, text, config, KEYS)
    spectrum = config.get("spectrum", {})
    if spectrum.get("kind", "sase") not in ("sase", "file"):
        raise InputFileError(f"{path}: line {_line_of(text, 'kind')}: spectrum kind must be \"sase\" or \"file\"")
    if spectrum.get("samples", 1) < 1:
        raise InputFileError(f"{path}: line {_line_of(text, 'samples')}: samples must be at least 1")
    return ShotTable(config, count, seed, lambda0_A, beam, path)
