import fs from 'node:fs';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { openStore, Store } from '../db/store.js';

// One line per command: its flags and <arguments> declare the parsing.
const SPECS = `start
doctor [--json]
build [--if-missing]
whatsapp-auth [--pairing-code <phone>]
whatsapp-unlink
groups list [--json]
groups register (--name <whatsapp group> | --jid <id> --name <name> --folder <folder>) [--trigger <@Name>] [--no-trigger-required] [--main]
tasks list [--json]
tasks runs <id> [--json]
tasks pause <id>
tasks resume <id>
tasks cancel <id>
chat [--chat <local:name>]
stop <chat>
open
service install
service uninstall
service status [--json]
audit [--group <folder>] [--runtime <kind>]`
  .split('\n')
  .map((line) => ({ line, name: /^[\w-]+(?: [a-z]+)?/.exec(line)![0] }));

const usage = (family: string) => `usage:
${SPECS.filter((c) => c.name.startsWith(family))
  .map((c) => `  nanoclaw ${c.line}\n`)
  .join('')}
options: -h/--help, --verbose (log lines on stderr), --version
exit codes: 0 ok, 1 failed, 2 usage error
`;

/** The command, or an exit code after help, the version or a usage error. */
export function parseCommand(argv: string[], out: NodeJS.WritableStream, err = out) {
  const [name = '', sub] = argv;
  const family = SPECS.filter((c) => c.name.split(' ')[0] === name);
  const help = usage(family.length ? name : '');
  const hasSub = family.length > 1 && !!sub && !sub.startsWith('-');
  const command = family.length > 1 ? `${name} ${hasSub ? sub : 'list'}` : name;
  const spec = family.find((c) => c.name === command);
  const flags = [...(spec?.line.matchAll(/--([\w-]+)( <)?/g) ?? [])];
  try {
    const { values, positionals } = parseArgs({
      args: argv.slice(family.length ? (hasSub ? 2 : 1) : 0),
      options: {
        ...Object.fromEntries(flags.map(([, f, s]) => [f!, { type: s ? 'string' : 'boolean' } as const])),
        help: { type: 'boolean', short: 'h' },
        verbose: { type: 'boolean' },
        version: { type: 'boolean' },
      },
      allowPositionals: true,
    });
    if (values.version) {
      const pkg = fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
      return (out.write(`${(JSON.parse(pkg) as { version: string }).version}\n`), 0);
    }
    if (values.help) return (out.write(help), 0);
    if (!family.length) throw new Error(name ? `unknown command '${name}'` : 'no command given');
    if (!spec)
      throw new Error(hasSub ? `unknown ${name} command '${sub}'` : `'nanoclaw ${name}' needs a subcommand`);
    const wanted = spec.line.match(/(?<!--[\w-]+ )<[^>]+>/g) ?? [];
    if (positionals.length < wanted.length)
      throw new Error(`'nanoclaw ${command}' needs ${wanted.join(' ')}`);
    if (positionals.length > wanted.length)
      throw new Error(`unexpected argument '${positionals[wanted.length]}'`);
    return { command, values: values as Record<string, string | undefined>, positionals };
  } catch (e) {
    err.write(`error: ${(e as Error).message}\n${help}`);
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
  let own;
  if (!deps.store && (write || fs.existsSync(file)))
    own = write ? openStore(file) : new Store(new Database(file, { readonly: true }));
  try {
    return fn(deps.store ?? own);
  } finally {
    own?.close();
  }
}
