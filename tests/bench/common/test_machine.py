"""The machine description recorded beside results: what it reads, what it leaves out, what it never imports."""
import subprocess
import sys
from pathlib import Path

import torch

from bench.common.machine import cpu_description, describe_machine, machine

ROOT = Path(__file__).resolve().parents[3]

CPUINFO = """processor\t: 0
model name\t: Example CPU @ 2.00GHz
flags\t\t: fpu sse2 avx2 avx512f amx_bf16 fma

processor\t: 1
model name\t: Example CPU @ 2.00GHz
flags\t\t: fpu sse2 avx2 avx512f amx_bf16 fma
"""


def test_cpu_description_names_the_model_and_the_vector_extensions_that_change_kernels(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    described = cpu_description(tmp_path / "cpuinfo")
    assert described == {"cpu_model": "Example CPU @ 2.00GHz", "cpu_vector_flags": "avx2 avx512f amx_bf16"}
    assert cpu_description(tmp_path / "absent") == {}  # no /proc/cpuinfo (macOS, Windows): nothing, no error


def test_machine_reports_torch_threads_and_kernels_and_no_date():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = machine()
        torch.set_num_threads(2)
        two = machine()
    finally:
        torch.set_num_threads(before)
    assert (one["torch_threads"], two["torch_threads"]) == (1, 2)  # a reduction splits by threads
    assert one["torch"] == torch.__version__
    assert one["torch_cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert "date" not in one, "the same computation on the same machine writes the same record"
    assert {k: v for k, v in one.items() if k != "torch_threads"} == {k: v for k, v in two.items() if k != "torch_threads"}


def test_machine_never_imports_torch():
    """The metric writers (protocols.report) stay torch-free: without torch loaded, its version comes from
    the package metadata and the threads are unknown."""
    code = ("import sys; from bench.common.machine import machine; host = machine(); "
            "print('torch' in sys.modules, host['torch'], host['torch_threads'])")
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    loaded, version, threads = shown.split()
    assert loaded == "False" and threads == "None"
    assert version in (torch.__version__, torch.__version__.split("+")[0])  # the metadata may drop the local tag


def test_describe_machine_is_one_line_for_people():
    host = {"cpu_model": "Example CPU", "cpu_vector_flags": "avx2", "torch": "2.14.1", "torch_cpu_kernels": "AVX2",
            "torch_threads": 2}
    assert describe_machine(host) == "Example CPU (avx2), torch 2.14.1, AVX2 kernels, 2 threads"
    assert describe_machine(None) == describe_machine({}) == "not recorded"
    unknown = describe_machine({"processor": "aarch64", "torch": "2.14.1"})
    assert unknown == "aarch64 (flags unknown), torch 2.14.1, ? threads"
