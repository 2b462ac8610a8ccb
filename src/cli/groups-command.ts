import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { registerGroup } from '../groups.js';

const USAGE = `usage:
  nanoclaw groups list
  nanoclaw groups register --jid <chat id> --name <name> --folder <folder> [--trigger @Name] [--no-trigger-required] [--main]
`;

export function runGroupsCommand(
  args: string[],
  deps: { store: Store; config: Config; out: Writable },
): number {
  const { store, out } = deps;
  const [sub = 'list', ...rest] = args;
  if (sub === 'list') {
    const groups = store.groups.all();
    if (groups.length === 0) {
      out.write('No registered groups.\n');
      return 0;
    }
    for (const g of groups) {
      const flags = [g.isMain && 'main', g.requiresTrigger ? `trigger ${g.trigger}` : 'no trigger needed'];
      out.write(
        `${g.folder.padEnd(16)} ${g.jid.padEnd(36)} ${g.name} (${flags.filter(Boolean).join(', ')})\n`,
      );
    }
    const known = store.messages.listChats().filter((c) => !store.groups.byJid(c.jid));
    if (known.length > 0) out.write(`\nKnown chats not registered:\n`);
    for (const c of known) out.write(`  ${c.jid.padEnd(36)} ${c.name || '(no name)'} [${c.channel}]\n`);
    return 0;
  }
  if (sub !== 'register') {
    out.write(`unknown groups command '${sub}'\n${USAGE}`);
    return 2;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        jid: { type: 'string' },
        name: { type: 'string' },
        folder: { type: 'string' },
        trigger: { type: 'string' },
        'no-trigger-required': { type: 'boolean', default: false },
        main: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    out.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { jid, name, folder, trigger, main } = values;
  if (!jid || !name || !folder) {
    const missing = Object.entries({ jid, name, folder }).filter(([, v]) => !v);
    out.write(`missing ${missing.map(([k]) => `--${k}`).join(', ')}\n${USAGE}`);
    return 2;
  }
  const requiresTrigger = !values['no-trigger-required'] && !main;
  const result = registerGroup(store, deps.config, {
    jid,
    name,
    folder,
    trigger,
    requiresTrigger,
    isMain: main,
  });
  if (!result.ok) {
    out.write(`error: ${result.error}\n`);
    return 1;
  }
  out.write(`Registered ${jid} as '${folder}'${main ? ' (main)' : ''}.\n`);
  return 0;
}
