"""The physical models a simulation is built from, in SI units inside (metres, radians, photons/m^2).

Factories take unit-suffixed arguments (`Detector.mosflm(distance_mm=...)`,
`Crystal.from_cell(..., phi_deg=...)`, `Beam.monochromatic(wavelength_A=...)`,
`Sample.water(size_um=...)`, `PanelDetector.from_panels(...)` for several panels); conventions
(MOSFLM, XDS, ...) are converted there. The command line builds the same models from its
resolved settings (setup.py)."""
from .beam import Beam
from .crystal import Crystal
from .detector import Detector
from .panels import PanelDetector
from .sample import Sample

__all__ = ["Beam", "Crystal", "Detector", "PanelDetector", "Sample"]
