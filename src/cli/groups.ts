import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { registerGroup } from '../groups.js';

const USAGE = `usage:
  nanoclaw groups list
  nanoclaw groups register --jid <chat id> --name <name> --folder <folder> [--trigger @Name] [--no-trigger-required] [--main]`;

/** `nanoclaw groups list|register`. Returns the exit code. */
export function runGroupsCommand(
  args: string[],
  deps: { store: Store; config: Config; out: Writable },
): number {
  const { store, config, out } = deps;
  const [sub, ...rest] = args;
  if (sub === 'list' || sub === undefined) {
    const groups = store.groups.all();
    if (groups.length === 0) {
      out.write('No registered groups.\n');
      return 0;
    }
    for (const g of groups) {
      const flags = [g.isMain ? 'main' : '', g.requiresTrigger ? `trigger ${g.trigger}` : 'no trigger needed']
        .filter(Boolean)
        .join(', ');
      out.write(`${g.folder.padEnd(16)} ${g.jid.padEnd(36)} ${g.name} (${flags})\n`);
    }
    const known = store.messages.listChats().filter((c) => !store.groups.byJid(c.jid));
    if (known.length > 0) {
      out.write(`\nKnown chats not registered:\n`);
      for (const c of known) out.write(`  ${c.jid.padEnd(36)} ${c.name || '(no name)'} [${c.channel}]\n`);
    }
    return 0;
  }
  if (sub !== 'register') {
    out.write(`unknown groups command '${sub}'\n${USAGE}\n`);
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
      strict: true,
    }));
  } catch (err) {
    out.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const missing = (['jid', 'name', 'folder'] as const).filter((k) => !values[k]);
  if (missing.length > 0) {
    out.write(`missing ${missing.map((m) => `--${m}`).join(', ')}\n${USAGE}\n`);
    return 2;
  }
  const result = registerGroup(store, config, {
    jid: values.jid!,
    name: values.name!,
    folder: values.folder!,
    ...(values.trigger ? { trigger: values.trigger } : {}),
    requiresTrigger: !values['no-trigger-required'] && !values.main,
    isMain: values.main,
  });
  if (!result.ok) {
    out.write(`error: ${result.error}\n`);
    return 1;
  }
  out.write(
    `Registered ${result.group.jid} as '${result.group.folder}'${result.group.isMain ? ' (main)' : ''}.\n`,
  );
  return 0;
}
