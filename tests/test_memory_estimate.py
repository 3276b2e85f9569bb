"""The meta-device memory estimate runs at full size (nothing allocated) and writes a well-formed table."""

import re

from benchmarks import memory_estimate
from tests.fixtures.cli import as_command


def test_memory_estimate_writes_pi0_and_reconvla_rows(tmp_path):
    out = tmp_path / "memory.md"
    args = ["--setups", "2", "--out", str(out)]
    with as_command("memory_estimate", args):
        assert memory_estimate.main(args) == 0
    rows = [
        line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| full fine-tune")
    ]
    assert [row[1].strip() for row in rows] == ["pi0", "reconvla"]
    (_, _, _, pi0_weights, _, _, pi0_sample, *_), (_, _, _, recon_weights, _, _, recon_sample, *_) = rows
    # The head adds weights and activations; checkpointed like the backbone, its activations stay small:
    # with only the backbone checkpointed, ReconVLA took about 1.46x pi0's memory at batch 8.
    assert float(recon_weights) > float(pi0_weights) and float(recon_sample) >= float(pi0_sample) > 0
    ratio = float(re.search(r"checkpointing, batch 8: ([0-9.]+)", out.read_text()).group(1))
    assert 1.0 < ratio < 1.2
