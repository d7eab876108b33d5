"""Physical parameters of SHARP-like radial-field patches — the contract of SCIENCE.md.

(Being written: the constants below are fixed; the batched implementation follows.)
"""

from __future__ import annotations

import astropy.units as u

#: Side of a model-space patch [model px]. Real patches are resized to MODEL_SIZE x MODEL_SIZE.
MODEL_SIZE = 128
#: Model space is b = clip(Br / FIELD_SCALE, -1, 1).
FIELD_SCALE = 1000 * u.G
#: Polarity threshold: P = {B > th}, N = {B < -th}.
POLARITY_THRESHOLD = 150 * u.G
#: Threshold of the "strong-field" unsigned flux at original resolution.
STRONG_FIELD_THRESHOLD = 100 * u.G
#: Side of the square structuring element used to dilate P and N for Schrijver's R [px].
R_DILATION_SIZE = 7
#: Bins of the histogram SIGMA is fitted to (spanning the image's own min..max).
SIGMA_BINS = 256
#: Rings k = 1..ALPHA_MAX_RING of the radially averaged power spectrum used for ALPHA.
ALPHA_MAX_RING = 25
#: Solar radius used by JSOC (header RSUN_REF).
RSUN_REF = 6.96e8 * u.m
#: SHARP CEA pixel size (CDELT1 = CDELT2).
SHARP_PIXEL_SCALE = 0.03 * u.deg
