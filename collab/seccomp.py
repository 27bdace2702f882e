"""The sandbox's seccomp filter: a classic-BPF program for `bwrap --seccomp FD`.

Denied with EPERM: every way to a new namespace (`unshare`, `setns`, `clone` with a CLONE_NEW*
flag) -- a fresh user namespace would give the program every capability inside it, hence mounts
of unbounded tmpfs --; mounting (`mount`, `umount2`, `pivot_root`, `chroot` and the new mount
API); the kernel keyring; `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_setup`, `ptrace`,
module loading, `kexec`, swap, `reboot`, `acct`. `clone3` fails with ENOSYS (its flags sit in
memory that BPF cannot read; glibc then falls back to `clone`). Everything else is allowed: the
filter closes doors the sandbox does not need, the namespaces and rlimits do the rest.

Only x86_64 and aarch64 are known; on any other architecture `filter_program` raises (the
sandbox refuses to run rather than run without the filter). A process of another ABI than the
filter's (x86 32-bit, x32) is killed.
"""

from __future__ import annotations

import platform
import struct

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: A = 32-bit word at offset k of seccomp_data
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K: jump if A & k
_RET_K = 0x06  # BPF_RET | BPF_K
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000  # | errno
EPERM, ENOSYS = 1, 38
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little endian).
_NR, _ARCH, _ARG0_LOW = 0, 4, 16
_X32_BIT = 0x40000000  # x86_64 syscall numbers with this bit are the x32 ABI

# CLONE_NEWTIME | NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NEW_ANY = 0x80 | 0x20000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
CLONE_NEW_ANY |= 0x40000000

# The syscalls the filter names, with their numbers on (x86_64, aarch64); the new mount API, clone3
# and io_uring share theirs.
_SYSCALLS = {
    "clone": (56, 220), "clone3": (435, 435), "unshare": (272, 97), "setns": (308, 268),
    "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41), "chroot": (161, 51),
    "add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219), "bpf": (321, 280),
    "perf_event_open": (298, 241), "userfaultfd": (323, 282), "ptrace": (101, 117),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294), "swapon": (167, 224),
    "swapoff": (168, 225), "reboot": (169, 142), "acct": (163, 89), "open_tree": (428, 428),
    "move_mount": (429, 429), "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432),
    "fspick": (433, 433), "mount_setattr": (442, 442), "io_uring_setup": (425, 425),
}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}  # AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64
# machine -> (audit arch, {syscall name: number})
ARCHES = {machine: (audit, {name: nrs[i] for name, nrs in _SYSCALLS.items()})
          for i, (machine, audit) in enumerate(_AUDIT_ARCH.items())}


def instruction(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    """One `struct sock_filter` {u16 code; u8 jt; u8 jf; u32 k} (8 bytes, native = little)."""
    return struct.pack("<HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes:
    """The filter for `machine` (default: this one) as bytes for `bwrap --seccomp FD`."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise RuntimeError(f"sandbox: no seccomp filter for architecture {machine!r}")
    audit_arch, numbers = ARCHES[machine]
    prog = [
        instruction(_LD_W_ABS, _ARCH),
        instruction(_JEQ_K, audit_arch, jt=1),  # our ABI: skip the kill
        instruction(_RET_K, RET_KILL_PROCESS),
        instruction(_LD_W_ABS, _NR),
    ]
    if machine == "x86_64":
        prog += [instruction(_JSET_K, _X32_BIT, jf=1), instruction(_RET_K, RET_KILL_PROCESS)]
    denied = {name: nr for name, nr in numbers.items() if name not in ("clone", "clone3")}
    for nr in sorted(denied.values()):
        prog += [instruction(_JEQ_K, nr, jf=1), instruction(_RET_K, RET_ERRNO | EPERM)]
    prog += [instruction(_JEQ_K, numbers["clone3"], jf=1), instruction(_RET_K, RET_ERRNO | ENOSYS)]
    prog += [
        instruction(_JEQ_K, numbers["clone"], jf=3),  # not clone: to the final allow
        instruction(_LD_W_ABS, _ARG0_LOW),  # clone's flags (the CLONE_NEW* bits are the low 32)
        instruction(_JSET_K, CLONE_NEW_ANY, jf=1),
        instruction(_RET_K, RET_ERRNO | EPERM),
        instruction(_RET_K, RET_ALLOW),
    ]
    return b"".join(prog)
