"""The benchmark module (``softargmax bench``): its timing rounds and a small real run."""

from __future__ import annotations

import json

import pytest

from softargmax import bench, cli


def test_time_rounds_interleaves_the_implementations():
    calls: list[tuple[str, int]] = []
    impls = {name: (lambda i, name=name: calls.append((name, i))) for name in ("a", "b", "c")}
    timed = bench.time_rounds(impls, repeat=4, n_inputs=2)
    # first calls on input 0, then rounds of one call each, the order rotating
    assert calls[:3] == [("a", 0), ("b", 0), ("c", 0)]
    rounds = [calls[3 + 3 * r: 6 + 3 * r] for r in range(4)]
    assert [[n for n, _ in rd] for rd in rounds] == [list("abc"), list("bca"), list("cab"), list("abc")]
    assert [{i for _, i in rd} for rd in rounds] == [{1}, {0}, {1}, {0}]  # inputs rotate
    assert set(timed) == {"a", "b", "c"}
    for first, times in timed.values():
        assert first >= 0 and len(times) == 4 and min(times) >= 0


def test_run_bench_times_every_implementation_and_renders_the_table():
    cases = [bench.Case.parse("16x300"), bench.Case.parse("300x16:0")]
    results = bench.run_bench(cases, ["float32", "float64"], ("softmax", "logsumexp"), repeat=2, peers=[])
    got = {(r.case, r.dtype, r.function, r.mode, r.impl) for r in results}
    for case in ("16x300", "300x16:0"):
        for dt in ("float32", "float64"):
            assert (case, dt, "softmax", "fresh", "softargmax") in got
            assert (case, dt, "softmax", "fresh", "numpy naive") in got
            assert (case, dt, "softmax", "out", "floor (np.copyto)") in got
            assert (case, dt, "logsumexp", "fresh", "floor (np.sum)") in got
    for r in results:
        assert len(r.times_s) == 2 and r.median_s > 0
        per_byte = 2 if r.function != "logsumexp" else 1
        assert r.gbps == pytest.approx(4800 * (4 if r.dtype == "float32" else 8) * per_byte / r.median_s / 1e9)
    table = bench.render_markdown(json.loads(json.dumps(bench.to_json(results, None, "softargmax bench"))))
    assert "| 16x300 | float32 | softmax | out |" in table
    assert "| 300x16:0 | float64 | logsumexp | fresh |" in table


def test_machine_info_names_the_vector_extension_and_the_compile_target():
    """The kernels' ratios to peers depend on the SIMD width that numba compiles for:
    the machine record names it (from the CPU's flags) and LLVM's CPU name, and the
    README table's header line shows both."""
    import llvmlite.binding

    m = bench.machine_info()
    assert m["simd"] in ("AVX-512", "AVX2", "NEON", "unknown")
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    if " avx512f" in flags:
        assert m["simd"] == "AVX-512"
    elif " avx2" in flags:
        assert m["simd"] == "AVX2"
    assert m["cpu_target"] == llvmlite.binding.get_host_cpu_name()
    table = bench.render_markdown({"machine": m, "results": []})
    assert f"({m['simd']}, {m['cpu_target']})" in table.splitlines()[0]


def test_cli_bench_writes_json_and_markdown(tmp_path, capsys):
    js, md = tmp_path / "b.json", tmp_path / "b.md"
    argv = ["bench", "--shapes", "8x100", "--dtypes", "float32", "--functions", "log_softmax",
            "--peers", "--repeat", "7", "--no-latency", "--json", str(js), "--markdown", str(md)]
    assert cli.main(argv) == 0
    data = json.loads(js.read_text())
    assert {r["impl"] for r in data["results"]} >= {"softargmax", "numpy naive", "floor (np.copyto)"}
    assert "| 8x100 | float32 | log_softmax | fresh |" in md.read_text()
    assert "softargmax benchmark" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--repeat", "3"], "--repeat must be at least 7"),
    (["--shapes", "8xten"], "--shapes: expected entries like"),
])
def test_cli_bench_bad_arguments(argv, message, capsys):
    assert cli.main(["bench", "--no-latency", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_latency_measures_every_entry():
    # per-call times in-process; import, first call, numba's own floor (a one-line cached
    # function in a module of its own) and the CLI in fresh processes: each one ran
    lat = bench.latency(repeat=20)
    names = {"softargmax softmax(10)", "import softargmax", "import + first numba call (warm cache)",
             "numba alone: a one-line cached function (warm cache)",
             "softargmax softmax 1 2 3 (CLI, end to end)"}
    assert names <= set(lat)
    for name in names:  # inf where every run of a command failed
        assert 0 < lat[name] < float("inf"), name
