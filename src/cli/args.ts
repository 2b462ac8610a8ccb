import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import Database from 'better-sqlite3';
import { openStore, Store } from '../db/store.js';

const str = { type: 'string' } as const;
const bool = { type: 'boolean' } as const;
const json = { json: bool };

// Per command, for parsing and help: [usage, what it does, options, positionals wanted].
const COMMANDS: Record<string, [string, string, ParseArgsConfig['options']?, number?]> = {
  start: ['', 'run the assistant (npm start runs it after its build steps)'],
  doctor: ['[--json]', 'check runtime, image, credentials, channels, policies, disk', json],
  build: ['[--if-missing]', 'build the agent image or agent-runner (bwrap)', { 'if-missing': bool }],
  'whatsapp-auth': [
    '[--pairing-code <phone>]',
    'link WhatsApp by QR or pairing code',
    { 'pairing-code': str },
  ],
  'whatsapp-unlink': ['', 'log out of WhatsApp and delete its credentials'],
  'groups list': ['[--json]', 'registered groups, known WhatsApp groups and other chats', json],
  'groups register': [
    '(--name <whatsapp group> | --jid <id> --name <name> --folder <folder>) [--trigger @Name] [--no-trigger-required] [--main]',
    'let the assistant answer in a chat; a known WhatsApp group needs only its name',
    { jid: str, name: str, folder: str, trigger: str, 'no-trigger-required': bool, main: bool },
  ],
  'tasks list': ['[--json]', 'scheduled tasks', json],
  'tasks runs': ['<id> [--json]', "a task's next run, last result and run history", json, 1],
  'tasks pause': ['<id>', 'pause a task', {}, 1],
  'tasks resume': ['<id>', 'resume a paused task', {}, 1],
  'tasks cancel': ['<id>', 'delete a task', {}, 1],
  chat: ['[--chat local:<name>]', 'talk to a group through the local channel', { chat: str }],
  stop: ['<chat>', "end the chat's running agent, e.g. nanoclaw stop local:main", {}, 1],
  open: ['', 'print the local chat link with its access token'],
  'service install': ['', 'run in the background at login (systemd user unit / launchd agent)'],
  'service uninstall': ['', 'stop running in the background'],
  'service status': ['[--json]', 'installed and running? (exit 1 if not)', json],
  audit: ['[--group <folder>] [--runtime <kind>] [--json] [--force]', 'attack a real sandbox from inside'],
};

const usage = (family?: string) =>
  Object.entries(COMMANDS)
    .filter(([k]) => !family || k.split(' ')[0] === family)
    .map(([k, [args, about]]) => `  nanoclaw ${k}${args && ` ${args}`}\n      ${about}\n`)
    .join('');

export const help = (family?: string) => `usage:\n${usage(family)}
options:
  -h, --help   this help, for any command (does nothing else)
  --verbose    log lines on stderr (start always logs; LOG_LEVEL sets the level)
  --version    the version of nanoclaw
exit codes: 0 ok, 1 failed, 2 usage error
`;

export type Parsed = {
  command: string;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
};

/** The command in argv, or the exit code after printing its help, or a usage error to err. */
export function parseCommand(argv: string[], out: Writable, err: Writable): Parsed | number {
  const [name = '', sub] = argv;
  const family = Object.keys(COMMANDS).filter((k) => k.split(' ')[0] === name);
  const hasSub = family.length > 1 && !!sub && !sub.startsWith('-');
  const command = family.length > 1 ? `${name} ${hasSub ? sub : 'list'}` : name;
  const spec = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  try {
    const { values, positionals } = parseArgs({
      args: argv.slice(hasSub ? 2 : 1),
      options: { ...spec?.[2], help: { ...bool, short: 'h' }, verbose: bool },
      allowPositionals: true,
    });
    if (values.help && family.length) return (out.write(help(name)), 0);
    if (!family.length) throw new Error(`unknown command '${name}'; see nanoclaw --help`);
    if (!spec)
      throw new Error(
        hasSub
          ? `unknown ${name} command '${sub}'`
          : `'nanoclaw ${name}' needs one of: ${family.map((k) => k.slice(name.length + 1)).join(', ')}`,
      );
    const wanted = spec[3] ?? 0;
    if (positionals.length < wanted) throw new Error(`'nanoclaw ${command}' needs ${spec[0]}`);
    if (positionals.length > wanted) throw new Error(`unexpected argument '${positionals[wanted]}'`);
    return { command, values: values as Parsed['values'], positionals };
  } catch (e) {
    err.write(`error: ${(e as Error).message}\n${family.length ? `usage:\n${usage(name)}` : ''}`);
    return 2;
  }
}

/** A command's store: the given one, else opened for writing, or read-only if the file exists (else undefined). */
export function withStore<T>(
  deps: { store?: Store; config: { dbPath: string } },
  write: boolean,
  fn: (store: Store | undefined) => T,
): T {
  if (deps.store) return fn(deps.store);
  const file = deps.config.dbPath;
  const store = write
    ? openStore(file)
    : fs.existsSync(file)
      ? new Store(new Database(file, { readonly: true, fileMustExist: true }))
      : undefined;
  try {
    return fn(store);
  } finally {
    store?.close();
  }
}
