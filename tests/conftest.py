"""Shared fixtures.

Real SHARP samples and the header table live in ``../shared`` beside the repository root
(read in place, never copied in). Tests that need them skip with a reason when absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
SAMPLES_DIR = SHARED_DIR / "data" / "sharp-samples"
HEADER_TABLE = SAMPLES_DIR / "sharp_headers_867.csv"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The folder of real SHARP FITS samples; skips the test when it is absent."""
    if not SAMPLES_DIR.is_dir():
        pytest.skip(f"real SHARP samples not found at {SAMPLES_DIR} (../shared is absent)")
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def br_sample_paths(samples_dir: Path) -> list[Path]:
    """The real Br segment FITS files (five of them)."""
    paths = sorted(samples_dir.glob("*.Br.fits"))
    if not paths:
        pytest.skip(f"no *.Br.fits in {samples_dir}")
    return paths


@pytest.fixture(scope="session")
def header_table_path() -> Path:
    """The table of 867 real SHARP headers; skips the test when it is absent."""
    if not HEADER_TABLE.is_file():
        pytest.skip(f"real SHARP header table not found at {HEADER_TABLE}")
    return HEADER_TABLE


@pytest.fixture
def one_thread():
    """One torch thread for a test (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    on a shared 2-core machine, two threads waiting on each other at every operation made the
    training tests up to 10x slower; one thread is steady."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
