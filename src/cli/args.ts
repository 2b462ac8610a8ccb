import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { openStore, Store } from '../db/store.js';

// One line per command: its flags and <arguments> declare the parsing.
const SPECS = `start  # run the assistant
doctor [--json]  # check the set-up
build [--if-missing]  # build the agent image
whatsapp-auth [--pairing-code <phone>]  # link WhatsApp
whatsapp-unlink  # log out of WhatsApp
groups list [--json]
groups register (--name <whatsapp group> | --jid <id> --name <name> --folder <folder>) [--trigger <@Name>] [--no-trigger-required] [--main]
tasks list [--json]
tasks runs <id> [--json]  # run history
tasks pause <id>
tasks resume <id>
tasks cancel <id>
chat [--chat <local:name>]  # chat in the terminal
stop <chat>  # end the chat's running agent
open  # print the local chat link
service install  # run in the background from login on
service uninstall
service status [--json]
audit [--group <folder>] [--runtime <kind>] [--json] [--force]  # attack a sandbox from inside`
  .split('\n')
  .map((text) => {
    const line = text.split('  #')[0]!;
    const name = /^[\w-]+(?: [a-z]+)?/.exec(line)![0];
    return { text, line, name, family: name.split(' ')[0]!, args: line.slice(name.length + 1) };
  });

const usage = (family?: string) =>
  SPECS.filter((c) => !family || c.family === family)
    .map((c) => `  nanoclaw ${c.text}\n`)
    .join('');

export const help = (family?: string) => `usage:\n${usage(family)}
options: -h, --help (only help), --verbose (log lines on stderr), --version
exit codes: 0 ok, 1 failed, 2 usage error
`;

type Parsed = {
  command: string;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
};

/** The command, or an exit code after help or a usage error. */
export function parseCommand(argv: string[], out: Writable, err: Writable): Parsed | number {
  const [name = '', sub] = argv;
  const family = SPECS.filter((c) => c.family === name);
  const hasSub = family.length > 1 && !!sub && !sub.startsWith('-');
  const command = family.length > 1 ? `${name} ${hasSub ? sub : 'list'}` : name;
  const spec = family.find((c) => c.name === command);
  const flags = [...(spec?.line.matchAll(/--([\w-]+)( <)?/g) ?? [])];
  const options = Object.fromEntries(
    flags.map(([, f, s]) => [f!, { type: s ? 'string' : 'boolean' } as const]),
  );
  try {
    const { values, positionals } = parseArgs({
      args: argv.slice(hasSub ? 2 : 1),
      options: { ...options, help: { type: 'boolean', short: 'h' }, verbose: { type: 'boolean' } },
      allowPositionals: true,
    });
    if (values.help && family.length) return (out.write(help(name)), 0);
    if (!family.length) throw new Error(`unknown command '${name}'; see nanoclaw --help`);
    if (!spec)
      throw new Error(
        hasSub
          ? `unknown ${name} command '${sub}'`
          : `'nanoclaw ${name}' needs one of: ${family.map((c) => c.name.slice(name.length + 1)).join(', ')}`,
      );
    const wanted = spec.line.match(/(?<!--[\w-]+ )<[^>]+>/g)?.length ?? 0;
    if (positionals.length < wanted) throw new Error(`'nanoclaw ${command}' needs ${spec.args}`);
    if (positionals.length > wanted) throw new Error(`unexpected argument '${positionals[wanted]}'`);
    return { command, values: values as Parsed['values'], positionals };
  } catch (e) {
    err.write(`error: ${(e as Error).message}\n${family.length ? `usage:\n${usage(name)}` : ''}`);
    return 2;
  }
}

/** The given store, else one opened for writing, or read-only if it exists. */
export function withStore<T>(
  deps: { store?: Store; config: { dbPath: string } },
  write: boolean,
  fn: (store: Store | undefined) => T,
): T {
  const file = deps.config.dbPath;
  const own = deps.store
    ? undefined
    : write
      ? openStore(file)
      : fs.existsSync(file)
        ? new Store(new Database(file, { readonly: true }))
        : undefined;
  try {
    return fn(deps.store ?? own);
  } finally {
    own?.close();
  }
}
