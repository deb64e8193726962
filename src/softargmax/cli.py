"""The ``softargmax`` command: parse arguments, call the public API, format the result.

    softargmax softmax 1 2 3 4 1 2 3
    softargmax softmax --temperature 0.5 -i scores.csv --format json -o probs.json
    softargmax log_softmax 1000 1001
    softargmax logsumexp -i - < rows.txt
    softargmax demo

A user mistake prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

__all__ = ["main"]

# One command runs one call: below this many numbers NumPy (the reference path) answers
# before numba could be imported and set up (about 0.5 s on a warm cache); above, the
# kernels win that back
_KERNELS_MIN = 1 << 20

# Modules that add subcommands through ``register_cli(subparsers)``; skipped while absent.
_PLUGINS = ("softargmax.bench", "softargmax.large_output.skipgram")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------- input
def _parse_number(token: str) -> float:
    try:
        return float(token)
    except ValueError:
        msg = f"not a number: {token.strip()!r}"
        raise ValueError(msg) from None


def _parse_text(text: str, source: str) -> np.ndarray:
    rows = []
    for line in text.splitlines():
        tokens = line.replace(",", " ").split()
        if tokens:
            rows.append([_parse_number(t) for t in tokens])
    if not rows:
        msg = f"no numbers in {source}"
        raise ValueError(msg)
    if len({len(r) for r in rows}) > 1:
        msg = f"rows of {source} have different lengths: {sorted({len(r) for r in rows})}"
        raise ValueError(msg)
    return np.array(rows, dtype=np.float64)


def _read_input(path: str) -> np.ndarray:
    if path == "-":
        return _parse_text(sys.stdin.read(), "standard input")
    if path.endswith(".npy"):
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except ValueError as err:
            msg = f"cannot read {path} as .npy: {err}"
            raise ValueError(msg) from None
    with open(path, encoding="utf-8") as fh:
        return _parse_text(fh.read(), path)


def _values(args: argparse.Namespace) -> np.ndarray:
    if args.input is not None and args.numbers:
        msg = "give numbers or --input, not both"
        raise ValueError(msg)
    if args.input is not None:
        return _read_input(args.input)
    if not args.numbers:
        msg = "no numbers given (give them as arguments, or --input FILE, or --input - for stdin)"
        raise ValueError(msg)
    return np.array([_parse_number(t) for t in args.numbers])


# --------------------------------------------------------------------------- output
def _emit(result: np.ndarray, args: argparse.Namespace, per_line: bool) -> None:
    fmt = args.format
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, result)
        data: bytes | str = buf.getvalue()
    elif fmt == "json":
        data = json.dumps(np.asarray(result, dtype=np.float64).tolist()) + "\n"
    elif fmt == "csv":
        rows = result.reshape(-1, 1) if per_line else np.atleast_2d(result)
        rows = rows.reshape(-1, rows.shape[-1]) if rows.ndim > 2 else rows
        data = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)
    else:
        rows = result.reshape(-1, 1) if per_line else np.atleast_2d(result)
        rows = rows.reshape(-1, rows.shape[-1]) if rows.ndim > 2 else rows
        p = args.precision
        data = "".join(" ".join(format(float(v), f".{p}g") for v in row) + "\n" for row in rows)
    if args.output is not None:
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(args.output, mode) as fh:
            fh.write(data)
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data)


# --------------------------------------------------------------------------- commands
def _run_distribution(args: argparse.Namespace) -> int:
    import softargmax

    x = _values(args)
    scale: dict[str, Any] = {"temperature": args.temperature, "beta": args.beta, "base": args.base}
    path: dict[str, Any] = {"implementation": "reference" if x.size < _KERNELS_MIN else "auto"}
    name = args.command.replace("-", "_")
    if name == "logsumexp":
        result = np.asarray(softargmax.logsumexp(x, axis=args.axis, **scale, **path))
        _emit(result, args, per_line=True)
        return 0
    if name == "softmax" and args.log:
        name = "log_softmax"
    if name == "hardmax":
        if any(v is not None for v in scale.values()):
            msg = "hardmax takes no --temperature, --beta or --base"
            raise ValueError(msg)
        result = softargmax.hardmax(x, axis=args.axis)
    else:
        result = getattr(softargmax, name)(x, axis=args.axis, **scale, **path)
    # one distribution per line: the distribution axis goes last
    _emit(np.moveaxis(np.asarray(result), args.axis, -1), args, per_line=False)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import tour

    sys.stdout.write(tour())
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_distribution(sub: Any, name: str, help_text: str, aliases: Sequence[str] = ()) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text, aliases=list(aliases))
    p.add_argument("numbers", nargs="*", help="the scores (or use --input)")
    p.add_argument("-i", "--input", metavar="FILE", help=".npy, .csv or .txt file, or - for stdin; one distribution per row")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--temperature", type=float, metavar="T", help="divide the scores by T > 0")
    scale.add_argument("--beta", type=float, metavar="B", help="multiply the scores by B")
    scale.add_argument("--base", type=float, metavar="b", help="use b**x instead of e**x")
    if name == "softmax":
        p.add_argument("--log", action="store_true", help="print log-probabilities")
    p.add_argument("--axis", type=int, default=-1, help="the distribution axis (default -1)")
    p.add_argument("--format", choices=("text", "json", "csv", "npy"), default="text")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--precision", type=_positive_int, default=7, metavar="N", help="significant digits of text output (default 7)")
    p.set_defaults(func=_run_distribution, command=name)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="softargmax",
        description="The softmax function family, exact at the edges of floating point.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"softargmax {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=_Parser)
    _add_distribution(sub, "softmax", "softmax probabilities, one distribution per line")
    _add_distribution(sub, "log_softmax", "log-softmax, one distribution per line", aliases=["log-softmax"])
    _add_distribution(sub, "logsumexp", "log-sum-exp of each distribution, one per line")
    _add_distribution(sub, "softmin", "softmax of the negated scores")
    _add_distribution(sub, "hardmax", "the arg max limit: ties share the mass")
    demo = sub.add_parser("demo", help="a short tour of the library")
    demo.set_defaults(func=_run_demo)
    for module in _PLUGINS:
        try:
            register: Callable[[Any], None] = importlib.import_module(module).register_cli
        except (ImportError, AttributeError):
            continue
        register(sub)
    return parser


def _normalise_negative_numbers(argv: list[str]) -> list[str]:
    """Let ``-1e5`` and ``-inf`` stand as numbers, not options (argparse knows only ``-1``)."""
    out = []
    for token in argv:
        if token.startswith("-") and len(token) > 1 and not token.startswith("--"):
            try:
                float(token)
            except ValueError:
                pass
            else:
                token = " " + token
        out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(_normalise_negative_numbers(list(sys.argv[1:] if argv is None else argv)))
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except BrokenPipeError:  # pragma: no cover - e.g. `softargmax ... | head`
        return 0
    except (ValueError, TypeError, OSError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, OSError) and err.filename is not None:
            message = f"{err.strerror}: {err.filename}"
        sys.stderr.write(f"softargmax {args.subcommand}: error: {message}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
