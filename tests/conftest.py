import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("ZOO_REFERENCE_DIR", REPO / ".." / "shared" / "reference" / "scinet-original"))


@pytest.fixture(scope="session")
def reference_dir():
    if not (REFERENCE_DIR / "oscillator.json").exists():
        pytest.skip(f"the authors' SciNet checkpoints are not at {REFERENCE_DIR}")
    return REFERENCE_DIR
