"""Fresh results with and without transparent huge pages: the allocation policy.

A fresh softmax result is a NumPy allocation whose pages are first touched inside the
parallel kernel. NumPy advises the kernel to back large allocations with 2 MiB huge
pages (``madvise(MADV_HUGEPAGE)``); on a system whose THP setting is ``madvise`` that
makes a page fault rarer but lets the kernel stall now and then to compact memory. This
script times fresh ``softmax`` results (and an empty-and-fill of the same size) in one
child process per setting, NumPy's huge-page advice on and off, and reports the median,
the minimum and the maximum of many calls: the typical cost and the outliers.

``--gap SECONDS`` pauses before each timed call. On a virtual machine whose balloon
device reports free memory to the host (virtio-balloon free page reporting, printed
below), memory freed a couple of seconds earlier has been handed back to the host by
then, and touching it again costs host page faults: calls in a tight loop reuse memory
that is still backed, calls spaced by a few seconds do not.

    python benchmarks/hugepages.py [--calls 25] [--gap 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "hugepages.json"

_CHILD = r"""
import json, sys, time
import numpy as np
import softargmax as sa
np._core.multiarray._set_madvise_hugepage(sys.argv[1] == "on")
calls = int(sys.argv[2])
gap = float(sys.argv[3])
x32 = np.random.default_rng(0).standard_normal((2048, 32000)).astype(np.float32)
x64 = x32.astype(np.float64)
cases = {
    "softmax float32 2048x32000": lambda: sa.softmax(x32),
    "softmax float64 2048x32000": lambda: sa.softmax(x64),
    "np.empty + fill float32 2048x32000": lambda: np.empty_like(x32).fill(1.0),
}
out = {}
for name, fn in cases.items():
    fn()
    ts = []
    for _ in range(calls):
        time.sleep(gap)
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    ts.sort()
    out[name] = {"median_ms": 1e3 * ts[len(ts) // 2], "min_ms": 1e3 * ts[0], "max_ms": 1e3 * ts[-1]}
print(json.dumps(out))
"""


def _thp_setting(name: str) -> str:
    try:
        return Path(f"/sys/kernel/mm/transparent_hugepage/{name}").read_text().strip()
    except OSError:
        return "unknown"


def _free_page_reporting() -> str:
    """Whether a virtio balloon device (id 5) offers free page reporting (feature bit 5)."""
    found = "no balloon device"
    for dev in Path("/sys/bus/virtio/devices").glob("*"):
        try:
            if int((dev / "device").read_text(), 16) != 5:
                continue
            features = (dev / "features").read_text().strip()
        except (OSError, ValueError):
            continue
        found = "yes" if len(features) > 5 and features[5] == "1" else "no"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=25, help="timed calls per case")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds of pause before each timed call")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the results")
    args = parser.parse_args()
    reporting = _free_page_reporting()
    print(f"THP enabled: {_thp_setting('enabled')}; defrag: {_thp_setting('defrag')}; "
          f"free page reporting to a host: {reporting}; pause before each call: {args.gap} s")
    results = {}
    for advice in ("on", "off"):
        done = subprocess.run([sys.executable, "-c", _CHILD, advice, str(args.calls), str(args.gap)],
                              capture_output=True, text=True, check=True, env=os.environ.copy())
        results[advice] = json.loads(done.stdout)
        for name, r in results[advice].items():
            print(f"  huge-page advice {advice:>3}  {name:<36} median {r['median_ms']:7.1f} ms"
                  f"  min {r['min_ms']:7.1f}  max {r['max_ms']:7.1f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"thp_enabled": _thp_setting("enabled"),
                                           "thp_defrag": _thp_setting("defrag"),
                                           "free_page_reporting": reporting, "gap_s": args.gap,
                                           "calls": args.calls, "results": results}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
