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

def default_beam_centre(convention, detsize_f, detsize_s, pixel_size):
    """(Xbeam, Ybeam) in metres when none is given: nanoBragg's detector centre for MOSFLM and
    DENZO ((detsize + pixel) / 2, X along the slow axis) and ADXV (X along the fast axis)."""
    if convention == "ADXV":
        return (detsize_f + pixel_size) / 2.0, (detsize_s - pixel_size) / 2.0
    return (detsize_s + pixel_size) / 2.0, (detsize_f + pixel_size) / 2.0


# the vectors nanoBragg starts from before any convention or custom vector is applied
CUSTOM_DEFAULTS = dict(fdet=(0, 0, 1), sdet=(0, -1, 0), odet=(1, 0, 0), beam=(1, 0, 0),
                       twotheta_axis=(0, 0, -1), polar=(0, 0, 1), spindle=(0, 0, 1))
