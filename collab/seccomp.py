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

# The new mount API, clone3 and io_uring share numbers on both architectures.
_COMMON = {"open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
           "fspick": 433, "mount_setattr": 442, "io_uring_setup": 425}
ARCHES = {
    "x86_64": (0xC000003E, {  # AUDIT_ARCH_X86_64
        "clone": 56, "clone3": 435, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166,
        "pivot_root": 155, "chroot": 161, "add_key": 248, "request_key": 249, "keyctl": 250,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "ptrace": 101,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "kexec_load": 246,
        "kexec_file_load": 320, "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163,
        **_COMMON,
    }),
    "aarch64": (0xC00000B7, {  # AUDIT_ARCH_AARCH64
        "clone": 220, "clone3": 435, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
        "pivot_root": 41, "chroot": 51, "add_key": 217, "request_key": 218, "keyctl": 219,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "ptrace": 117,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "kexec_load": 104,
        "kexec_file_load": 294, "swapon": 224, "swapoff": 225, "reboot": 142, "acct": 89,
        **_COMMON,
    }),
}


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
