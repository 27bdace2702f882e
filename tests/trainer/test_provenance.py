"""Run provenance (trainer/provenance.py): parsers on hand-written /proc text, and the record."""

from __future__ import annotations

import json
import subprocess

from trainer.provenance import PACKAGES, REPO, parse_cpu_model, parse_mem_total_gib, write_provenance

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu vme

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
"""


def test_parsers():
    assert parse_cpu_model(CPUINFO) == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert parse_cpu_model("processor : 0\n") is None
    assert parse_mem_total_gib("MemTotal:       24682496 kB\nMemFree: 1 kB\n") == 23.54  # 24682496 / 2^20
    assert parse_mem_total_gib("") is None


def test_record_names_commit_packages_and_machine(tmp_path):
    record = write_provenance(tmp_path)
    assert json.loads((tmp_path / "provenance.json").read_text()) == record
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["git"]["commit"] == head and isinstance(record["git"]["dirty"], bool)
    assert set(record["packages"]) == set(PACKAGES) and record["packages"]["numpy"]
    assert record["machine"]["cpu_cores"] >= 1 and record["machine"]["memory_gib"] > 0
