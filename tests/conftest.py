import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same examples every time (a red CI must be reproducible); locally, new ones each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/helpers.py, for the test packages below
ANCHORS = ROOT.parent / "shared" / "anchors"

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:  # tiny models train fastest on one thread (two that wait on each other cost 5-10x on busy cores)
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one torch thread per test module (fastest, and immune to other processes on a small
    shared machine), whatever a command in between set; restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def anchors_dir() -> Path:
    if not ANCHORS.is_dir():
        pytest.skip(f"published result tables not found at {ANCHORS}")
    return ANCHORS
