"""Per-pixel factors kept across the frames of a series, so that a frame evaluates only its lattice sum.

In a rotation series the detector, the beam and the polarization settings are the same for every
frame; only the crystal's orientations (the engine's term table) change. engine.plain_factors
(unit diffracted vectors, solid angle, capture fraction, polarization) is therefore computed once
per pixel chunk and engine.factor_pixels (the lattice sum and the final scale, the same operations
as a single render's) is evaluated per frame, compiled (fused.FactorKernel) or eagerly. A run whose
detector, beam direction or polarization differs from the cached ones recomputes the factors; a
detector whose factors exceed the memory budget renders its remaining chunks the usual way.
"""
import dataclasses

import numpy as np
import torch

from .engine import factor_pixels, plain_factors, term_table

# bytes of cached factors: a 1024^2 detector with one sub-pixel needs 72 MB in float64
FACTOR_BUDGET = 1 << 27


def same_values(a, b):
    if torch.is_tensor(a) or torch.is_tensor(b):
        return (torch.is_tensor(a) and torch.is_tensor(b) and a.shape == b.shape and a.dtype == b.dtype
                and a.device == b.device and bool(torch.equal(a, b)))
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(same_values, a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.shape == b.shape and bool(np.array_equal(a, b))
    return type(a) is type(b) and bool(a == b)


def frozen_values(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    return x.detach().clone() if torch.is_tensor(x) else x


def _signature(sim, inputs):
    """Everything the factors depend on: the detector's fields, its geometry, the first source's
    direction (polarization) and the polarization settings."""
    d = sim.detector
    fields = [getattr(d, f.name) for f in dataclasses.fields(d) if f.name != "_cache"]
    geo = [inputs.geo[k] for k in sorted(inputs.geo)]
    f = sim.flags
    return [frozen_values(x) for x in fields + geo + [inputs.incident[0], f.kahn, f.nopolar, f.oversample_omega]]


class FactorCache:
    """The factors of one series' pixel chunks (keyed by their pixel lists), valid while the
    signature holds. Set `Simulation.factor_cache` to one to use it; several simulations may share one."""

    def __init__(self, budget: int = FACTOR_BUDGET):
        self.budget = budget
        self.entries = {}
        self.bytes = 0
        self.signature = None
        self._frame = None  # (inputs, term table, compiled kernel's frame inputs or None)

    @staticmethod
    def applies(sim, state) -> bool:
        """Only for the plain path without autograd, per-term state or a dmin cut (which needs
        per-source sums), on one panel."""
        f = sim.flags
        dmin = f.dmin.detach() if torch.is_tensor(f.dmin) else f.dmin
        return not (torch.is_grad_enabled() or state.enabled or state.phi_first_pending or float(dmin) > 0
                    or getattr(sim.detector, "n_panels", 1) > 1 or f.oversample_thick or f.oversample_polar
                    or f.oversample_omega)

    def factors(self, sim, inputs, slow, fast):
        """The chunk's factors (computed now if new), or None when they would exceed the budget."""
        signature = _signature(sim, inputs)
        if self.signature is None or not same_values(signature, self.signature):
            self.entries, self.bytes, self.signature = {}, 0, signature
        n = slow.numel()
        key = (n, int(slow[0]), int(fast[0]), int(slow[-1]), int(fast[-1]))
        entry = self.entries.get(key)
        if entry is not None and torch.equal(entry[0], slow) and torch.equal(entry[1], fast):
            return entry[2]
        d = sim.detector
        size = n * ((3 * d.thicksteps * d.oversample ** 2 + 4) * torch.finfo(d.dtype).bits // 8
                    + slow.element_size() + fast.element_size())
        if entry is not None or self.bytes + size > self.budget:
            return None  # another pixel list with the same ends, or over the budget: not cached
        pos = d.positions(inputs.geo, slow, fast)
        # compact copies: the engine's slices would keep its whole per-sub-pixel arrays alive
        factors = {k: None if v is None else v.clone(memory_format=torch.contiguous_format)
                   for k, v in plain_factors(pos, inputs.geo, d, inputs.incident, sim.flags).items()}
        self.entries[key] = (slow.clone(), fast.clone(), factors)
        self.bytes += size
        return factors

    def table(self, inputs):
        """The frame's term table (its orientations, sources and weights)."""
        if self._frame is None or self._frame[0] is not inputs:
            vectors = inputs.rot.reshape(-1, 3, 3)
            self._frame = (inputs, term_table(inputs.incident, inputs.wavelengths, vectors, inputs.weight_factor), None)
        return self._frame[1]

    def eager(self, sim, inputs, factors):
        return factor_pixels(factors, self.table(inputs), sim.crystal, sim.flags)

    def compiled(self, sim, inputs, factors):
        """The chunk's values from the compiled FactorKernel (built here first if needed)."""
        from .fused import Kernel, factor_inputs, frame_inputs

        table = self.table(inputs)
        if self._frame[2] is None:
            sizes = factors["diffracted"].shape[1:3] + table.shape[1:]
            kernel = Kernel(sim.detector, sim.crystal, sim.flags, inputs.weight_factor, factors=sizes)
            self._frame = (inputs, table, (kernel.load(), frame_inputs(table, sim.crystal, sim.flags)))
        run, rest = self._frame[2]
        return run(factor_inputs(factors) + rest)[0]
