"""-nexus FILE.nxs: an NXmx file (HDF5) that DIALS's FormatNXmx and the `nxmx` reader read.

Layout (McStas frame: z along the beam, y up):
  /entry                         NXentry  definition = "NXmx", start_time, end_time, program_name
  /entry/data/data               (frames, slow, fast), one frame per chunk, bitshuffle-LZ4;
                                 uint16 noise images (the -noisefile image; ADC offset included,
                                 -adc 0 for plain counts), float32 photons with -nonoise
  /entry/instrument/detector     NXdetector: distance, beam_center_x/y (pixels), pixel sizes,
                                 sensor_material/thickness, saturation_value, depends_on ->
                                 transformations/origin (offset = the first pixel's corner)
  .../detector/module            NXdetector_module: fast/slow_pixel_direction -> module_offset -> origin
  /entry/instrument/beam         NXbeam: incident_wavelength (+ per-shot incident_wavelength_weights)
  /entry/sample                  NXsample: depends_on -> transformations/omega (per-frame start
                                 angles, omega_increment_set, omega_end), unit_cell, ub_matrix
                                 (columns a*, b*, c* in 1/Angstrom, McStas frame) per frame
  /entry/nanobrag                NXcollection: command_line, plan, frame_seeds, frame_args, complete

Frames are appended one at a time and the file is flushed after each, so an interrupted run
leaves a valid file holding every finished frame; -resume appends the rest.
"""
from __future__ import annotations

import datetime
import json
import os
import shlex

import h5py
import hdf5plugin
import numpy as np

from ..errors import InputFileError, UsageError
from ..settings import RTD
from .meta import frame_orientation, lab_to_mcstas, program_version, spectrum


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _group(parent, name, nx_class, **attrs):
    group = parent.require_group(name)
    group.attrs["NX_class"] = nx_class
    for key, value in attrs.items():
        group.attrs[key] = value
    return group


def _field(group, name, value, units=None, **attrs):
    ds = group.create_dataset(name, data=value)
    if units is not None:
        ds.attrs["units"] = units
    for key, val in attrs.items():
        ds.attrs[key] = val
    return ds


def _growing(group, name, shape, dtype, units=None, **kw):
    """An extendable per-frame dataset (frames along axis 0)."""
    ds = group.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                              chunks=(1, *shape) if shape else (1024,), **kw)
    if units is not None:
        ds.attrs["units"] = units
    return ds


def _axis(group, name, value, kind, vector, depends_on, units, offset=(0.0, 0.0, 0.0), **kw):
    ds = group.create_dataset(name, data=value, **kw)
    ds.attrs.update({"transformation_type": kind, "vector": np.asarray(vector, dtype=np.float64),
                     "depends_on": depends_on, "units": units, "offset": np.asarray(offset, dtype=np.float64),
                     "offset_units": "mm"})
    return ds


class NexusFile:
    """One NXmx file for the whole dataset (see the module docstring for its layout)."""

    def __init__(self, path: str, plan, argv):
        self.path, self.plan, self.count = path, plan, plan.count
        self.command = [a for a in argv if a not in ("-resume", "-overwrite")]
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise InputFileError(f"{path}: output folder {folder} does not exist")
        self.file = None

    def existing(self) -> list:
        return [self.path] if os.path.exists(self.path) else []

    def frames_done(self) -> int:
        if not os.path.exists(self.path):
            return 0
        try:
            with h5py.File(self.path, "r") as f:
                stored = json.loads(f["/entry/nanobrag/command_line"].attrs["argv"])
                done = int(f["/entry/data/data"].shape[0])
        except (OSError, KeyError, ValueError) as exc:
            raise InputFileError(f"{self.path}: cannot resume it ({exc}); give -overwrite to start again") from None
        if stored != self.command:
            raise UsageError(f"{self.path}: written by a different command; cannot -resume it (give -overwrite)")
        return done

    def open(self, renderer, start: int) -> None:
        if start > 0:
            self.file = h5py.File(self.path, "r+")
            return
        self.file = h5py.File(self.path, "w")
        self._write_header(renderer)
        self.file.flush()

    def _write_header(self, renderer) -> None:
        v, f = renderer.settings, self.file
        f.attrs["default"] = "entry"
        entry = _group(f, "entry", "NXentry", default="data")
        _field(entry, "definition", "NXmx")
        _field(entry, "start_time", _now())
        _field(entry, "end_time", _now())
        _field(entry, "program_name", "nanobrag_torch", version=program_version(),
               configuration=shlex.join(["nanoBragg", *self.command]))
        noisy = v.calculate_noise
        frame = (v.spixels, v.fpixels)
        data = _group(entry, "data", "NXdata", signal="data")
        _growing(data, "data", frame, np.uint16 if noisy else np.float32,
                 units="counts" if noisy else "photons", **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
        instrument = _group(entry, "instrument", "NXinstrument")
        _field(instrument, "name", "nanoBragg simulation")
        self._write_detector(instrument, v, noisy)
        self._write_beam(instrument, v)
        _field(_group(entry, "source", "NXsource"), "name", "nanoBragg simulated source")
        self._write_sample(entry, v)
        self._write_notes(entry, v)

    def _write_detector(self, instrument, v, noisy) -> None:
        m = lab_to_mcstas(v.beam)
        g = v.geo
        det = _group(instrument, "detector", "NXdetector")
        _field(det, "description", "nanoBragg simulated pixel detector")
        _field(det, "type", "pixel")
        _field(det, "distance", v.distance * 1000.0, "mm")
        _field(det, "beam_center_x", v.Fbeam / v.pixel_size, "pixel")
        _field(det, "beam_center_y", v.Sbeam / v.pixel_size, "pixel")
        _field(det, "x_pixel_size", v.pixel_size, "m")
        _field(det, "y_pixel_size", v.pixel_size, "m")
        _field(det, "sensor_material", "Si")
        _field(det, "sensor_thickness", v.detector_thick, "m")
        _field(det, "saturation_value", 65535 if noisy else np.iinfo(np.int32).max)
        _field(det, "count_time", v.exposure, "s")
        _field(det, "frame_time", v.exposure, "s")
        _field(det, "depends_on", "/entry/instrument/detector/transformations/origin")
        tr = _group(det, "transformations", "NXtransformations")
        _axis(tr, "origin", 0.0, "translation", m @ np.asarray(g["odet"]), ".", "mm",
              offset=m @ np.asarray(g["pix0"]) * 1000.0)
        module = _group(det, "module", "NXdetector_module")
        _field(module, "data_origin", np.array([0, 0], dtype=np.int32))
        _field(module, "data_size", np.array([v.spixels, v.fpixels], dtype=np.int32))
        _field(module, "data_stride", np.array([v.fpixels, 1], dtype=np.int32))
        _axis(module, "module_offset", 0.0, "translation", (1.0, 0.0, 0.0),
              "/entry/instrument/detector/transformations/origin", "mm")
        base = "/entry/instrument/detector/module/module_offset"
        _axis(module, "fast_pixel_direction", v.pixel_size * 1000.0, "translation", m @ np.asarray(g["fdet"]),
              base, "mm")
        _axis(module, "slow_pixel_direction", v.pixel_size * 1000.0, "translation", m @ np.asarray(g["sdet"]),
              base, "mm")

    def _write_beam(self, instrument, v) -> None:
        beam = _group(instrument, "beam", "NXbeam")
        if self.plan.shots is not None and self.plan.shots.has_spectra():
            m = self.plan.shots.spectrum_samples
            _growing(beam, "incident_wavelength", (m,), np.float64, units="angstrom")
            _growing(beam, "incident_wavelength_weights", (m,), np.float64)
        else:
            _field(beam, "incident_wavelength", v.lambda0 * 1e10, "angstrom")
        _growing(beam, "total_flux_fluence", (), np.float64, units="photons/m^2")

    def _write_sample(self, entry, v) -> None:
        sample = _group(entry, "sample", "NXsample")
        _field(sample, "name", "nanoBragg crystal")
        _field(sample, "depends_on", "/entry/sample/transformations/omega")
        tr = _group(sample, "transformations", "NXtransformations")
        omega = _growing(tr, "omega", (), np.float64, units="deg")
        omega.attrs.update({"transformation_type": "rotation", "depends_on": ".",
                            "vector": lab_to_mcstas(v.beam) @ np.asarray(v.spindle, dtype=np.float64)})
        _growing(tr, "omega_increment_set", (), np.float64, units="deg")
        _growing(tr, "omega_end", (), np.float64, units="deg")
        _growing(sample, "unit_cell", (6,), np.float64)
        _growing(sample, "ub_matrix", (3, 3), np.float64)

    def _write_notes(self, entry, v) -> None:
        notes = _group(entry, "nanobrag", "NXcollection")
        _field(notes, "command_line", shlex.join(["nanoBragg", *self.command]), argv=json.dumps(self.command))
        _field(notes, "plan", json.dumps(self.plan.describe()))
        _field(notes, "adc_offset", v.adc_offset, "counts")
        _growing(notes, "frame_seeds", (), np.int64)
        _growing(notes, "frame_args", (), h5py.string_dtype())
        notes.attrs["complete"] = False

    def write(self, result) -> None:
        image = result.counts if result.counts is not None else result.photons
        _put(self.file["/entry/data/data"], result.frame.index, image)
        write_record(self.file, result.frame.index, frame_record(result))
        self.file.flush()

    def close(self, complete: bool) -> None:
        if self.file is None:
            return
        f = self.file
        del f["/entry/end_time"]
        _field(f["/entry"], "end_time", _now())
        f["/entry/nanobrag"].attrs["complete"] = bool(complete)
        f.close()
        self.file = None

    def sheet_name(self) -> str:
        return self.path + ".png"

    def read_frame(self, index: int) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            return f["/entry/data/data"][index]


def _put(ds, index: int, value) -> None:
    """Write frame `index` of a per-frame dataset, growing it first (a resumed run rewrites in place)."""
    if ds.shape[0] <= index:
        ds.resize(index + 1, axis=0)
    ds[index] = value


# where each per-frame value of frame_record goes in the file
RECORD_PATHS = {
    "omega": "/entry/sample/transformations/omega",
    "omega_increment_set": "/entry/sample/transformations/omega_increment_set",
    "omega_end": "/entry/sample/transformations/omega_end",
    "unit_cell": "/entry/sample/unit_cell",
    "ub_matrix": "/entry/sample/ub_matrix",
    "total_flux_fluence": "/entry/instrument/beam/total_flux_fluence",
    "incident_wavelength": "/entry/instrument/beam/incident_wavelength",
    "incident_wavelength_weights": "/entry/instrument/beam/incident_wavelength_weights",
    "frame_seeds": "/entry/nanobrag/frame_seeds",
    "frame_args": "/entry/nanobrag/frame_args",
}


def frame_record(result) -> dict:
    """Everything a frame adds to the file besides its pixels (small: a distributed run's workers
    send these to the client, which writes them into the master file)."""
    v, frame = result.settings, result.frame
    osc = v.osc * RTD
    cell, ub = frame_orientation(v)
    record = {"omega": frame.phi_deg, "omega_increment_set": osc, "omega_end": frame.phi_deg + osc,
              "unit_cell": cell, "ub_matrix": ub, "total_flux_fluence": v.fluence,
              "frame_seeds": frame.seed, "frame_args": shlex.join(frame.args)}
    if "wavelengths_A" in frame.shot:
        record["incident_wavelength"], record["incident_wavelength_weights"] = spectrum(frame.shot)
    return record


def write_record(f, index: int, record: dict) -> None:
    """Write frame `index`'s record (spectra only where the file has per-shot spectra)."""
    per_shot = RECORD_PATHS["incident_wavelength_weights"] in f
    for key, value in record.items():
        if per_shot or not key.startswith("incident_wavelength"):
            _put(f[RECORD_PATHS[key]], index, value)
