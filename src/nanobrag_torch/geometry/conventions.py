"""Detector/beam coordinate conventions of nanoBragg (lab frame: x along the MOSFLM beam)."""

# fdet, sdet, odet, beam, twotheta axis, polarization E-vector, spindle
CONVENTIONS = {
    "ADXV": dict(fdet=(1, 0, 0), sdet=(0, -1, 0), odet=(0, 0, 1), beam=(0, 0, 1),
                 twotheta_axis=(-1, 0, 0), polar=(1, 0, 0), spindle=(1, 0, 0)),
    "MOSFLM": dict(fdet=(0, 0, 1), sdet=(0, -1, 0), odet=(1, 0, 0), beam=(1, 0, 0),
                   twotheta_axis=(0, 0, -1), polar=(0, 0, 1), spindle=(0, 0, 1)),
    "DENZO": dict(fdet=(0, 0, 1), sdet=(0, -1, 0), odet=(1, 0, 0), beam=(1, 0, 0),
                  twotheta_axis=(0, 0, -1), polar=(0, 0, 1), spindle=(0, 0, 1)),
    "XDS": dict(fdet=(1, 0, 0), sdet=(0, 1, 0), odet=(0, 0, 1), beam=(0, 0, 1),
                twotheta_axis=(1, 0, 0), polar=(1, 0, 0), spindle=(1, 0, 0)),
    "DIALS": dict(fdet=(1, 0, 0), sdet=(0, 1, 0), odet=(0, 0, 1), beam=(0, 0, 1),
                  twotheta_axis=(0, 1, 0), polar=(0, 1, 0), spindle=(0, 1, 0)),
}

# the vectors nanoBragg starts from before any convention or custom vector is applied
CUSTOM_DEFAULTS = dict(fdet=(0, 0, 1), sdet=(0, -1, 0), odet=(1, 0, 0), beam=(1, 0, 0),
                       twotheta_axis=(0, 0, -1), polar=(0, 0, 1), spindle=(0, 0, 1))
