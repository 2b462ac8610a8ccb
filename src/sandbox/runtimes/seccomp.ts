/**
 * bwrap's seccomp filter as classic BPF (no libseccomp): a denylist of what Docker's default profile
 * refuses an unprivileged container, for both architectures (the kernel says which one calls).
 */

export type SeccompArch = 'x86_64' | 'aarch64';

/** include/uapi/linux/audit.h */
export const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7 } as const;
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const EPERM = 1;
export const ENOSYS = 38;

/** x32 calls are x86_64 calls with this bit: a table the denylist does not cover. */
const X32_SYSCALL_BIT = 0x40000000;
/** CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
const CLONE_NAMESPACE_FLAGS =
  0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;
/** The personas Docker lets through: plain Linux, PER_LINUX32, UNAME26, both, and the query. */
const SAFE_PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** `name x86_64 aarch64` (syscall_64.tbl, asm-generic/unistd.h); `-`: no such call there. */
const TABLE = [
  // Filesystem and namespace reshaping: the sandbox's view must stay the one bwrap built.
  'mount 165 40, umount2 166 39, unshare 272 97, setns 308 268, pivot_root 155 41, chroot 161 51',
  'fsopen 430 430, fsconfig 431 431, fsmount 432 432, fspick 433 433, move_mount 429 429, open_tree 428 428',
  'mount_setattr 442 442, open_by_handle_at 304 265, name_to_handle_at 303 264, quotactl 179 60, quotactl_fd 443 443',
  // Kernel attack surface an agent never needs.
  'bpf 321 280, perf_event_open 298 241, userfaultfd 323 282, io_uring_setup 425 425, io_uring_enter 426 426',
  'io_uring_register 427 427, keyctl 250 219, add_key 248 217, request_key 249 218, lookup_dcookie 212 18',
  'fanotify_init 300 262',
  // Other processes' memory: the runner and the agent share a uid, so uid checks do not help.
  'ptrace 101 117, process_vm_readv 310 270, process_vm_writev 311 271, kcmp 312 272, pidfd_getfd 438 438',
  'process_madvise 440 440',
  // NUMA placement: Docker refuses it without CAP_SYS_NICE.
  'mbind 237 235, set_mempolicy 238 237, get_mempolicy 239 236, move_pages 279 239, migrate_pages 256 238',
  'set_mempolicy_home_node 450 450',
  // Whole-machine operations.
  'kexec_load 246 104, kexec_file_load 320 294, init_module 175 105, finit_module 313 273, delete_module 176 106',
  'reboot 169 142, swapon 167 224, swapoff 168 225, acct 163 89, settimeofday 164 170, clock_settime 227 112',
  'clock_adjtime 305 266, adjtimex 159 171, syslog 103 116, vhangup 153 58, nfsservctl 180 42',
  'iopl 172 -, ioperm 173 -',
  // Obsolete calls that only remain as attack surface.
  'uselib 134 -, ustat 136 -, sysfs 139 -, _sysctl 156 -, create_module 174 -, get_kernel_syms 177 -',
  'query_module 178 -',
  // Checked by argument or answered differently, below.
  'clone 56 220, clone3 435 435, personality 135 92',
];

const number = (text = '-') => (text === '-' ? null : Number(text));
export const SYSCALLS: Record<string, readonly [number | null, number | null]> = Object.fromEntries(
  TABLE.join(',')
    .split(',')
    .map((entry) => {
      const [name = '', x86, arm] = entry.trim().split(' ');
      return [name, [number(x86), number(arm)]];
    }),
);

/** EPERM, as Docker answers. */
export const DENIED_SYSCALLS = Object.keys(SYSCALLS).filter(
  (name) => !['clone', 'clone3', 'personality'].includes(name),
);

export function syscallNumber(name: string, arch: SeccompArch): number | null {
  const entry = SYSCALLS[name];
  if (!entry) throw new Error(`unknown syscall ${name}`);
  return entry[arch === 'x86_64' ? 0 : 1];
}

// BPF opcodes (linux/filter.h); offsets into struct seccomp_data (64-bit args, little-endian).
const LD_W_ABS = 0x20;
const JMP_JA = 0x05;
const JMP_JEQ_K = 0x15;
const JMP_JSET_K = 0x45;
const RET_K = 0x06;
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const OFFSET_ARG0_LOW = 16;

export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const stmt = (code: number, k: number): SockFilter => ({ code, jt: 0, jf: 0, k });
const jump = (code: number, k: number, jt: number, jf: number): SockFilter => ({ code, jt, jf, k });
const ret = (value: number): SockFilter => stmt(RET_K, value >>> 0);
const errno = (code: number): SockFilter => ret(SECCOMP_RET_ERRNO | code);

/** One architecture's checks (A: the syscall number); short forward jumps only, so blocks chain. */
function archBlock(arch: SeccompArch): SockFilter[] {
  const nr = (name: string) => syscallNumber(name, arch) as number;
  const block: SockFilter[] = [];
  if (arch === 'x86_64') block.push(jump(JMP_JSET_K, X32_SYSCALL_BIT, 0, 1), errno(EPERM));
  for (const name of DENIED_SYSCALLS) {
    const denied = syscallNumber(name, arch);
    if (denied !== null) block.push(jump(JMP_JEQ_K, denied, 0, 1), errno(EPERM));
  }
  // clone3 passes its flags in memory the filter cannot read: ENOSYS makes glibc fall back to clone.
  block.push(jump(JMP_JEQ_K, nr('clone3'), 0, 1), errno(ENOSYS));
  const personas = SAFE_PERSONALITIES.length;
  block.push(
    jump(JMP_JEQ_K, nr('personality'), 0, personas + 3),
    stmt(LD_W_ABS, OFFSET_ARG0_LOW),
    // Each match jumps to the allow after the errno: from the i-th compare that is personas - i.
    ...SAFE_PERSONALITIES.map((p, i) => jump(JMP_JEQ_K, p, personas - i, 0)),
    errno(EPERM),
    ret(SECCOMP_RET_ALLOW),
  );
  // Threads are clone() without namespace flags; only a clone into new namespaces is refused.
  block.push(
    jump(JMP_JEQ_K, nr('clone'), 0, 3),
    stmt(LD_W_ABS, OFFSET_ARG0_LOW),
    jump(JMP_JSET_K, CLONE_NAMESPACE_FLAGS, 0, 1),
    errno(EPERM),
    ret(SECCOMP_RET_ALLOW),
  );
  return block;
}

/** Dispatch on the architecture; kill any other. */
export function seccompInstructions(): SockFilter[] {
  const x86 = archBlock('x86_64');
  const load = stmt(LD_W_ABS, OFFSET_NR);
  return [
    stmt(LD_W_ABS, OFFSET_ARCH),
    jump(JMP_JEQ_K, AUDIT_ARCH.x86_64, 0, 1),
    stmt(JMP_JA, 3), // to the x86_64 block
    jump(JMP_JEQ_K, AUDIT_ARCH.aarch64, 1, 0),
    // i386 and x32 binaries arrive as other architectures, whose tables are not covered.
    ret(SECCOMP_RET_KILL_PROCESS),
    stmt(JMP_JA, x86.length + 1), // aarch64: over the x86_64 block
    load,
    ...x86,
    load,
    ...archBlock('aarch64'),
  ];
}

/** struct sock_filter[] for bwrap's --seccomp: 8 bytes each, little-endian. */
export function compileSeccompFilter(instructions: SockFilter[] = seccompInstructions()): Buffer {
  if (instructions.length > 4096) throw new Error('seccomp program exceeds BPF_MAXINSNS');
  const buf = Buffer.alloc(instructions.length * 8);
  instructions.forEach((ins, i) => {
    buf.writeUInt16LE(ins.code, i * 8);
    buf.writeUInt8(ins.jt, i * 8 + 2);
    buf.writeUInt8(ins.jf, i * 8 + 3);
    buf.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
  });
  return buf;
}
