"""The GPU wheel folder's repacking: LZMA-compressed wheels without the dropped parts still install with
pip."""

import importlib.util
import sys
import zipfile
from pathlib import Path

from tests.fixtures import processes
from tests.fixtures.wheels import make_wheel

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("fill_gpu_wheels", REPO / "scripts" / "fill_gpu_wheels.py")
fill_gpu_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fill_gpu_wheels)


def test_a_repacked_wheel_installs_without_its_dropped_parts(tmp_path):
    wheel = make_wheel(
        tmp_path,
        {
            "toy_pkg/__init__.py": b"VALUE = 7\n",
            "toy_pkg/assets/big.bin": bytes(range(256)) * 4000,
            "toy_pkg/assets/nested/more.bin": b"x" * 1000,
        },
    )
    fill_gpu_wheels.repack(wheel, ("toy_pkg/assets/",))

    with zipfile.ZipFile(wheel) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_LZMA}
        assert not [n for n in archive.namelist() if n.startswith("toy_pkg/assets/")]
        record = archive.read("toy_pkg-1.0.dist-info/RECORD").decode()
    assert "assets" not in record and "toy_pkg/__init__.py,sha256=" in record

    site = tmp_path / "site"
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        f"--target={site}",
        str(wheel),
    ]
    result = processes.run(install, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (site / "toy_pkg" / "__init__.py").read_text() == "VALUE = 7\n"
    assert not (site / "toy_pkg" / "assets").exists()


def test_what_the_gpu_machine_has_includes_what_its_packages_require():
    present = fill_gpu_wheels.requirement_closure(("transformers",))
    # transformers' own requirements are there with it; nothing it merely offers as an extra is.
    assert {"transformers", "huggingface-hub", "tokenizers", "safetensors"} <= present
    assert "diffusers" not in present and "lerobot" not in present
