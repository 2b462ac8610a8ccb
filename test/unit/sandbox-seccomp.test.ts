import { describe, expect, it } from 'vitest';
import {
  AUDIT_ARCH,
  compileSeccompFilter,
  DENIED_SYSCALLS,
  ENOSYS,
  EPERM,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  seccompInstructions,
  syscallNumber,
  SYSCALLS,
  type SeccompArch,
  type SockFilter,
} from '../../src/sandbox/runtimes/seccomp.js';

/** The bytes bwrap hands to the kernel, read back as instructions. */
function decode(buf: Buffer): SockFilter[] {
  expect(buf.length % 8).toBe(0);
  const out: SockFilter[] = [];
  for (let i = 0; i < buf.length; i += 8)
    out.push({
      code: buf.readUInt16LE(i),
      jt: buf.readUInt8(i + 2),
      jf: buf.readUInt8(i + 3),
      k: buf.readUInt32LE(i + 4),
    });
  return out;
}

interface Call {
  arch: number;
  nr: number;
  args?: bigint[];
}

/** A classic-BPF interpreter for the opcodes the generator uses; anything else is a test failure. */
function evaluate(program: SockFilter[], call: Call): number {
  const word = (offset: number): number => {
    if (offset === 0) return call.nr >>> 0;
    if (offset === 4) return call.arch >>> 0;
    const index = Math.floor((offset - 16) / 8);
    const arg = call.args?.[index] ?? 0n;
    if (offset >= 16 && (offset - 16) % 8 === 0) return Number(arg & 0xffffffffn);
    if (offset >= 16 && (offset - 16) % 8 === 4) return Number((arg >> 32n) & 0xffffffffn);
    throw new Error(`load from offset ${offset}`);
  };
  let a = 0;
  let pc = 0;
  for (let steps = 0; steps < 100_000; steps++) {
    const ins = program[pc];
    if (!ins) throw new Error(`pc ${pc} is outside the program (${program.length})`);
    pc++;
    switch (ins.code) {
      case 0x20:
        a = word(ins.k);
        break;
      case 0x05:
        pc += ins.k;
        break;
      case 0x15:
        pc += a === ins.k ? ins.jt : ins.jf;
        break;
      case 0x45:
        pc += (a & ins.k) >>> 0 !== 0 ? ins.jt : ins.jf;
        break;
      case 0x06:
        return ins.k;
      default:
        throw new Error(`unexpected opcode 0x${ins.code.toString(16)}`);
    }
  }
  throw new Error('program did not return');
}

const program = decode(compileSeccompFilter());
const ARCHES: SeccompArch[] = ['x86_64', 'aarch64'];
const run = (arch: SeccompArch, name: string | number, args: bigint[] = []) =>
  evaluate(program, {
    arch: AUDIT_ARCH[arch],
    nr: typeof name === 'number' ? name : (syscallNumber(name, arch) as number),
    args,
  });

const DENY = (SECCOMP_RET_ERRNO | EPERM) >>> 0;
const NOSYS = (SECCOMP_RET_ERRNO | ENOSYS) >>> 0;

/** Ordinary calls every program makes: [name, x86_64, aarch64]. */
const ORDINARY: Array<[string, number, number]> = [
  ['read', 0, 63],
  ['write', 1, 64],
  ['openat', 257, 56],
  ['mmap', 9, 222],
  ['futex', 202, 98],
  ['execve', 59, 221],
  ['wait4', 61, 260],
  ['exit_group', 231, 94],
  ['socket', 41, 198],
  ['getpid', 39, 172],
];

const THREAD_FLAGS = 0x3d0f00n; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
const NAMESPACE_FLAGS: Record<string, bigint> = {
  CLONE_NEWNS: 0x00020000n,
  CLONE_NEWCGROUP: 0x02000000n,
  CLONE_NEWUTS: 0x04000000n,
  CLONE_NEWIPC: 0x08000000n,
  CLONE_NEWUSER: 0x10000000n,
  CLONE_NEWPID: 0x20000000n,
  CLONE_NEWNET: 0x40000000n,
};

describe('seccomp filter (classic BPF for bwrap --seccomp)', () => {
  it('is a well-formed program: short jumps in range, ends in returns, fits BPF_MAXINSNS', () => {
    expect(program.length).toBeGreaterThan(50);
    expect(program.length).toBeLessThanOrEqual(4096);
    program.forEach((ins, i) => {
      if (ins.code === 0x15 || ins.code === 0x45) {
        expect(i + 1 + Math.max(ins.jt, ins.jf)).toBeLessThan(program.length);
      }
      if (ins.code === 0x05) expect(i + 1 + ins.k).toBeLessThan(program.length);
    });
    expect(program.at(-1)?.code).toBe(0x06);
    expect(program).toEqual(seccompInstructions());
  });

  it('kills a caller of any other architecture (i386 or x32 tables, unknown machines)', () => {
    for (const arch of [0x40000003, 0x40000028, 0, 0xffffffff])
      expect(evaluate(program, { arch, nr: 39 })).toBe(SECCOMP_RET_KILL_PROCESS);
  });

  it.each(ARCHES)('allows the ordinary calls on %s', (arch) => {
    for (const [name, x86, arm] of ORDINARY)
      expect(run(arch, arch === 'x86_64' ? x86 : arm), name).toBe(SECCOMP_RET_ALLOW);
  });

  it.each(ARCHES)('refuses every denied call with EPERM on %s', (arch) => {
    let checked = 0;
    for (const name of DENIED_SYSCALLS) {
      if (syscallNumber(name, arch) === null) continue;
      expect(run(arch, name), name).toBe(DENY);
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
  });

  it('covers at least what the brief and Docker’s default profile refuse', () => {
    const required = [
      'mount',
      'umount2',
      'unshare',
      'setns',
      'bpf',
      'keyctl',
      'add_key',
      'request_key',
      'ptrace',
      'process_vm_readv',
      'process_vm_writev',
      'perf_event_open',
      'kexec_load',
      'kexec_file_load',
      'init_module',
      'finit_module',
      'delete_module',
      'reboot',
      'swapon',
      'swapoff',
      'pivot_root',
      'chroot',
      'acct',
      'settimeofday',
      'clock_settime',
      'clock_adjtime',
      'adjtimex',
      'open_by_handle_at',
      'name_to_handle_at',
      'userfaultfd',
      'iopl',
      'ioperm',
      'quotactl',
      'lookup_dcookie',
      'fsopen',
      'fsmount',
      'fsconfig',
      'move_mount',
      'open_tree',
      'fspick',
      'syslog',
    ];
    expect(required.filter((name) => !DENIED_SYSCALLS.includes(name))).toEqual([]);
  });

  it('does not deny by accident: every listed number is unique per architecture', () => {
    for (const [index, arch] of ARCHES.entries()) {
      const numbers = Object.values(SYSCALLS)
        .map((pair) => pair[index])
        .filter((n) => n !== null);
      expect(new Set(numbers).size, arch).toBe(numbers.length);
    }
  });

  it.each(ARCHES)('lets threads and plain forks clone on %s, but not into new namespaces', (arch) => {
    expect(run(arch, 'clone', [THREAD_FLAGS])).toBe(SECCOMP_RET_ALLOW);
    expect(run(arch, 'clone', [17n])).toBe(SECCOMP_RET_ALLOW); // fork(): SIGCHLD only
    for (const [flag, bit] of Object.entries(NAMESPACE_FLAGS)) {
      expect(run(arch, 'clone', [bit | 17n]), flag).toBe(DENY);
      expect(run(arch, 'clone', [bit | THREAD_FLAGS]), flag).toBe(DENY);
    }
  });

  it.each(ARCHES)('answers clone3 with ENOSYS on %s, so glibc falls back to clone', (arch) => {
    expect(run(arch, 'clone3')).toBe(NOSYS);
  });

  it.each(ARCHES)('allows only the harmless personalities on %s', (arch) => {
    for (const persona of [0n, 8n, 0x20000n, 0x20008n, 0xffffffffn])
      expect(run(arch, 'personality', [persona])).toBe(SECCOMP_RET_ALLOW);
    for (const persona of [0x0040000n /* ADDR_NO_RANDOMIZE */, 0x0400000n /* READ_IMPLIES_EXEC */])
      expect(run(arch, 'personality', [persona])).toBe(DENY);
  });

  it('refuses the x32 ABI on x86_64 whatever the call', () => {
    for (const nr of [0, 1, 39, 59, 231]) expect(run('x86_64', 0x40000000 | nr)).toBe(DENY);
  });
});
