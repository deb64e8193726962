"""softargmax against the memory floor, NumPy, SciPy, torch and JAX, in one process.

    python benchmarks/compare.py [--quick] [--json results.json] [--plot bench.png]

A thin script over :mod:`softargmax.bench` (the same as ``softargmax bench``).
"""

import sys

from softargmax.bench import main

if __name__ == "__main__":
    sys.exit(main())
