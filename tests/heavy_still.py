"""Benchmark W2's heavy still at test size (triclinic cell, misset, HKL lookup, mosaic, phi steps,
sub-pixels), shared by the compiled-path, accelerator and speed-guard tests."""


def heavy_still_args(hkl, detpixels, pixel_mm):
    return ["-cell", "70", "80", "90", "75", "85", "95", "-misset", "10", "20", "30", "-hkl", str(hkl),
            "-default_F", "10", "-lambda", "1.0", "-N", "5", "-distance", "100", "-mosaic", "0.5",
            "-mosaic_dom", "10", "-phi", "0", "-osc", "1", "-phisteps", "5", "-oversample", "2", "-nointerpolate",
            "-detpixels", str(detpixels), "-pixel", str(pixel_mm)]


def write_hkl(path, span):
    """A dense block of reflections (|h|, |k|, |l| <= span) with varying amplitudes, so the lookup
    does real work."""
    with open(path, "w") as f:
        for h in range(-span, span + 1):
            for k in range(-span, span + 1):
                for l in range(-span, span + 1):
                    f.write(f"{h} {k} {l} {1 + (h * 7 + k * 3 + l) % 50}\n")
