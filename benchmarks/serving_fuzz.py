"""The REST fuzz test of tests/serving/test_reliability.py with a larger example budget (CI runs 150).

    python benchmarks/serving_fuzz.py [--examples 5000]

Every generated request must get a 2xx or 4xx, and a valid request must still be answered after it.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    args = parser.parse_args(argv)
    env = dict(os.environ, ZOO_FUZZ_EXAMPLES=str(args.examples))
    command = [sys.executable, "-m", "pytest", "-q", "tests/serving/test_reliability.py", "-k", "fuzzed"]
    return subprocess.call(command, cwd=REPO, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
