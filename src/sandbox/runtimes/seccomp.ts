// bwrap's seccomp filter as classic BPF: Docker's default denylist, for x86_64 and aarch64.

export type SeccompArch = 'x86_64' | 'aarch64';
export type SockFilter = { code: number; jt: number; jf: number; k: number };
export const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7 } as const;
export const [SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW] = [
  0x80000000, 0x50000, 0x7fff0000,
];
export const [EPERM, ENOSYS] = [1, 38];

const X32_SYSCALL_BIT = 0x40000000;
/** CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;
const SAFE_PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

// `name x86_64 aarch64` (one number: the same on both; `-`: none there).
const TABLE = `mount 165 40, umount2 166 39, unshare 272 97, setns 308 268, pivot_root 155 41, chroot 161 51
fsopen 430, fsconfig 431, fsmount 432, fspick 433, move_mount 429, open_tree 428, mount_setattr 442
open_by_handle_at 304 265, name_to_handle_at 303 264, quotactl 179 60, quotactl_fd 443
bpf 321 280, perf_event_open 298 241, userfaultfd 323 282, io_uring_setup 425, io_uring_enter 426
io_uring_register 427, keyctl 250 219, add_key 248 217, request_key 249 218, lookup_dcookie 212 18
fanotify_init 300 262
ptrace 101 117, process_vm_readv 310 270, process_vm_writev 311 271, kcmp 312 272, pidfd_getfd 438
process_madvise 440
mbind 237 235, set_mempolicy 238 237, get_mempolicy 239 236, move_pages 279 239, migrate_pages 256 238
set_mempolicy_home_node 450
kexec_load 246 104, kexec_file_load 320 294, init_module 175 105, finit_module 313 273, delete_module 176 106
reboot 169 142, swapon 167 224, swapoff 168 225, acct 163 89, settimeofday 164 170, clock_settime 227 112
clock_adjtime 305 266, adjtimex 159 171, syslog 103 116, vhangup 153 58, nfsservctl 180 42, iopl 172 -
ioperm 173 -, uselib 134 -, ustat 136 -, sysfs 139 -, _sysctl 156 -, create_module 174 -
get_kernel_syms 177 -, query_module 178 -
clone 56 220, clone3 435, personality 135 92`;

export const SYSCALLS: Record<string, (number | null)[]> = Object.fromEntries(
  TABLE.split(/,\s*|\n/).map((entry) => {
    const [name, x86, arm = x86] = entry.split(' ');
    return [name, [x86, arm].map((n) => (n === '-' ? null : Number(n)))];
  }),
);

export const DENIED_SYSCALLS = Object.keys(SYSCALLS).filter((name) => !/^(clone3?|personality)$/.test(name));

export const syscallNumber = (name: string, arch: SeccompArch) => SYSCALLS[name]![arch === 'x86_64' ? 0 : 1];

// linux/filter.h; loads read struct seccomp_data: nr at 0, arch at 4, args[0]'s low word at 16.
const op = (code: number, k: number, jt = 0, jf = 0): SockFilter => ({ code, jt, jf, k: k >>> 0 });
const load = (offset: number) => op(0x20, offset);
const ja = (k: number) => op(0x05, k);
const jeq = (k: number, jt: number, jf: number) => op(0x15, k, jt, jf);
const jset = (k: number, jt: number, jf: number) => op(0x45, k, jt, jf);
const ret = (k: number) => op(0x06, k);
const errno = (code: number) => ret(SECCOMP_RET_ERRNO | code);
const allow = ret(SECCOMP_RET_ALLOW);

function archBlock(arch: SeccompArch): SockFilter[] {
  const nr = (name: string) => syscallNumber(name, arch) as number;
  const n = SAFE_PERSONALITIES.length;
  return [
    ...(arch === 'x86_64' ? [jset(X32_SYSCALL_BIT, 0, 1), errno(EPERM)] : []), // x32: a table not covered
    ...DENIED_SYSCALLS.flatMap((name) =>
      syscallNumber(name, arch) === null ? [] : [jeq(nr(name), 0, 1), errno(EPERM)],
    ),
    // clone3's flags are in memory the filter cannot read; on ENOSYS glibc falls back to clone.
    jeq(nr('clone3'), 0, 1),
    errno(ENOSYS),
    jeq(nr('personality'), 0, n + 3),
    load(16),
    ...SAFE_PERSONALITIES.map((p, i) => jeq(p, n - i, 0)),
    errno(EPERM),
    allow,
    // Threads: clone() without namespace flags.
    jeq(nr('clone'), 0, 3),
    load(16),
    jset(CLONE_NAMESPACE_FLAGS, 0, 1),
    errno(EPERM),
    allow,
  ];
}

export function seccompInstructions(): SockFilter[] {
  const x86 = archBlock('x86_64');
  return [
    load(4),
    jeq(AUDIT_ARCH.x86_64, 0, 1),
    ja(3),
    jeq(AUDIT_ARCH.aarch64, 1, 0),
    ret(SECCOMP_RET_KILL_PROCESS),
    ja(x86.length + 1),
    load(0),
    ...x86,
    load(0),
    ...archBlock('aarch64'),
  ];
}

export function compileSeccompFilter(): Buffer {
  const program = seccompInstructions();
  const buf = Buffer.alloc(program.length * 8);
  program.forEach(({ code, jt, jf, k }, i) => {
    buf.writeUInt16LE(code, i * 8);
    buf.writeUInt8(jt, i * 8 + 2);
    buf.writeUInt8(jf, i * 8 + 3);
    buf.writeUInt32LE(k, i * 8 + 4);
  });
  return buf;
}

export function ociSeccompProfile() {
  const deny = (names: string[], value?: number, errnoRet = EPERM) => ({
    names,
    action: 'SCMP_ACT_ERRNO',
    errnoRet,
    ...(value && { args: [{ index: 0, value, valueTwo: value, op: 'SCMP_CMP_MASKED_EQ' }] }),
  });
  const bits = (mask: number) => [...Array(32).keys()].map((i) => 2 ** i).filter((bit) => (mask & bit) >>> 0);
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: [process.arch === 'arm64' ? 'SCMP_ARCH_AARCH64' : 'SCMP_ARCH_X86_64'],
    syscalls: [
      deny(DENIED_SYSCALLS),
      deny(['clone3'], undefined, ENOSYS),
      ...bits(CLONE_NAMESPACE_FLAGS).map((flag) => deny(['clone'], flag)),
      // READ_IMPLIES_EXEC and ADDR_NO_RANDOMIZE weaken exploit mitigations; Docker allows neither.
      ...[0x0400000, 0x0040000].map((flag) => deny(['personality'], flag)),
    ],
  };
}
