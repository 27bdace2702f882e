"""The sandbox's seccomp filter (collab/seccomp.py), run through a small classic-BPF evaluator."""

from __future__ import annotations

import struct

import pytest

from collab import seccomp
from collab.seccomp import ARCHES, ENOSYS, EPERM, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS


def run_filter(program: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """Evaluate the BPF program on one seccomp_data; only the opcodes the filter uses."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns = [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x45):
            hit = acc == k if code == 0x15 else bool(acc & k)
            pc += 1 + (jt if hit else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def test_one_instruction_is_eight_little_endian_bytes():
    assert seccomp.instruction(0x06, 0x7FFF0000) == b"\x06\x00\x00\x00\x00\x00\xff\x7f"
    assert seccomp.instruction(0x15, 272, jt=0, jf=1) == b"\x15\x00\x00\x01\x10\x01\x00\x00"


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_filter_verdicts(machine):
    arch, nr = ARCHES[machine]
    program = seccomp.filter_program(machine)
    verdict = lambda call, arg0=0: run_filter(program, nr[call], arch, arg0)  # noqa: E731
    assert verdict("unshare") == RET_ERRNO | EPERM
    assert verdict("unshare", 0x10000000 | 0x20000) == RET_ERRNO | EPERM  # unshare -Urm
    assert verdict("mount") == verdict("setns") == verdict("keyctl") == RET_ERRNO | EPERM
    assert verdict("fsopen") == verdict("bpf") == verdict("ptrace") == RET_ERRNO | EPERM
    assert verdict("clone", 0x10000000) == RET_ERRNO | EPERM  # CLONE_NEWUSER
    assert verdict("clone", 0x01000011) == RET_ALLOW  # fork(): SIGCHLD | CHILD_SETTID...
    assert verdict("clone", 0x003D0F00) == RET_ALLOW  # pthread_create's flags
    assert verdict("clone3") == RET_ERRNO | ENOSYS
    assert run_filter(program, 0, arch) == RET_ALLOW  # read / io_setup: allowed
    assert run_filter(program, 1, arch) == RET_ALLOW
    assert run_filter(program, nr["unshare"], 0x40000003) == RET_KILL_PROCESS  # i386 ABI


def test_x32_syscalls_are_killed():
    arch, nr = ARCHES["x86_64"]
    program = seccomp.filter_program("x86_64")
    assert run_filter(program, 0x40000000 | nr["unshare"], arch) == RET_KILL_PROCESS


def test_unknown_architecture_is_refused():
    with pytest.raises(RuntimeError, match="riscv64"):
        seccomp.filter_program("riscv64")
