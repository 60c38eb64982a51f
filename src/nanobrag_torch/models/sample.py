"""What the beam illuminates besides the crystal: nanoBragg's water background (SI)."""
from dataclasses import dataclass

from ..engine import R_E_SQR

AVOGADRO = 6.02214179e23
WATER_F, WATER_MW = 2.57, 18.0  # forward-scattering factor of water and its molecular weight


@dataclass
class Sample:
    """water_size: thickness (m) of the water illuminated along with the crystal (-water, in um)."""

    water_size: object = 0.0

    @classmethod
    def water(cls, size_um: float = 0.0) -> "Sample":
        """A water layer of `size_um` micrometres (the command line's -water)."""
        return cls(water_size=size_um / 1e6)

    def background(self, fluence):
        """I_bg, the water's photons per pixel before nanoBragg's final scale (as nanoBragg sums it)."""
        return WATER_F ** 2 * R_E_SQR * fluence * self.water_size ** 3 * 1e6 * AVOGADRO / WATER_MW
