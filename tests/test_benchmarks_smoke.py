"""The benchmark script runs end to end and writes a well-formed report (no assertion on any timing)."""

import os
import sys
from pathlib import Path

import pytest

from benchmarks import bench_latent_cache, bench_vs_pi0
from tests.fixtures import processes
from tests.fixtures.cli import as_command

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(module, args: list[str]) -> None:
    """The benchmark's `main(args)` in this process, as `python -m benchmarks.<name> args` runs it."""
    with as_command(module.__name__, args):
        module.main(args)


@pytest.mark.slow
def test_bench_vs_pi0_quick_writes_a_table(tmp_path):
    out = tmp_path / "bench.md"
    run_benchmark(bench_vs_pi0, ["--quick", "--out", str(out)])
    report = out.read_text()
    assert "| batch | compile | measurement | stock pi0 | ReconVLA | ratio | target | verdict |" in report
    rows = [line for line in report.splitlines() if line.startswith("| 1 |")]
    measured = {line.split("|")[3].strip() for line in rows}
    assert {"predict_action_chunk", "select_action, empty queue (computes a chunk)"} <= measured
    assert any(m.startswith("train step") for m in measured)
    assert any(m.startswith("peak memory") for m in measured)
    assert "## Targets" in report and "not measured on a GPU yet" in report
    assert "MiB" in report.split("peak memory", 1)[1].splitlines()[0]  # the memory subprocesses reported
    assert "action chunks identical" in report  # the equivalence check ran


@pytest.mark.slow
def test_bench_vs_pi0_quick_measures_reconvla_pi05_against_stock_pi05(tmp_path):
    # The pi05 pair through every measurement once: the breakdown and the memory workers only at the pixels
    # target, to keep the run short.
    out = tmp_path / "bench.md"
    run_benchmark(bench_vs_pi0, ["--quick", "--base", "pi05", "--recon-targets", "pixels", "--out", str(out)])
    report = out.read_text()
    assert report.startswith("# Benchmarks: ReconVLA against LeRobot's stock pi05\n")
    assert "## Side by side (pi05 base)" in report
    assert "| batch | compile | measurement | stock pi05 | ReconVLA | ratio | target | verdict |" in report
    assert "stock pi0 |" not in report  # no pi0 table in a pi05 run
    rows = [line for line in report.splitlines() if line.startswith("| 1 |")]
    measured = {line.split("|")[3].strip() for line in rows}
    assert {"predict_action_chunk", "train step (pixels target)"} <= measured
    assert "pi05 core fwd+bwd, with capture hook" in measured  # the breakdown ran the pi05 core
    assert "MiB" in report.split("peak memory", 1)[1].splitlines()[0]  # the memory workers built pi05
    assert "reconvla-pixels and pi05 action chunks identical" in report


@pytest.mark.slow
def test_bench_latent_cache_quick_writes_its_section_and_keeps_the_rest(tmp_path):
    out = tmp_path / "bench.md"
    out.write_text("# Report\n\nkept above\n")
    run_benchmark(bench_latent_cache, ["--quick", "--out", str(out)])
    report = out.read_text()
    assert report.startswith("# Report\n\nkept above\n") and report.count("## Latent cache") == 1
    # Writing the section again (what a second run's --out does) replaces it instead of appending another.
    begin, end = bench_latent_cache.BEGIN, bench_latent_cache.END
    section = report[report.index(begin) : report.index(end) + len(end)]
    bench_latent_cache.write_section(out, section)
    assert out.read_text() == report
    (row,) = [line for line in report.splitlines() if line.startswith("| sd: ")]
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[1] == "1" and cells[8].startswith("rel. diff")  # the cached-vs-encoded loss check ran
    assert float(cells[9]) > 0 and float(cells[10]) > 0  # build time and size per 1,000 frames


@pytest.mark.slow
def test_bench_gpu_runs_end_to_end_at_the_tiny_size(tmp_path):
    # The GPU measurement through its launcher, on the CPU: every measurement and the report, compile
    # included.
    out = tmp_path / "bench_gpu.md"
    proc = processes.run(
        [
            "bash",
            str(REPO / "benchmarks" / "run_bench_gpu.sh"),
            "--variant",
            "tiny",
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
        env=dict(os.environ, PYTHON=sys.executable, RECONVLA_BENCH_SITE=str(tmp_path / "site")),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = out.read_text()
    latency = [
        line for line in report.splitlines() if line.startswith(("| eager |", "| compiled (default) |"))
    ]
    assert len(latency) == 2
    train = [line.split("|")[1:-1] for line in report.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert {(row[0].strip(), row[1].strip()) for row in train} == {
        (size, name) for size in ("1", "2") for name in ("pi0", "reconvla, VAE", "reconvla, latent cache")
    }
