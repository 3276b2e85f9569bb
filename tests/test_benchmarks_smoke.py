"""The benchmark script runs end to end and writes a well-formed report (no assertion on any timing)."""

import sys
from pathlib import Path

import pytest
from tests.fixtures import processes

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_vs_pi0_quick_writes_a_table(tmp_path):
    out = tmp_path / "bench.md"
    proc = processes.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_vs_pi0.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
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
