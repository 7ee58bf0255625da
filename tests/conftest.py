import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ANCHORS = ROOT.parent / "shared" / "anchors"

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def anchors_dir() -> Path:
    if not ANCHORS.is_dir():
        pytest.skip(f"published result tables not found at {ANCHORS}")
    return ANCHORS
