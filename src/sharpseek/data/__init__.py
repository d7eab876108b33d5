"""Data: SHARP FITS, JSOC, the object store, versioned datasets, ingest, synthetic regions and the
flare catalogue. Above physics and config; below everything that learns, analyses or serves."""
