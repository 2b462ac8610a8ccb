import type { Writable } from 'node:stream';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { registerGroup } from '../groups.js';
import { parseCommand, withStore } from './args.js';

/** `nanoclaw groups …`; without a store given it opens config.dbPath (read-only to list). */
export function runGroupsCommand(
  args: string[],
  deps: { store?: Store; config: Config; out: Writable; err?: Writable },
): number {
  const { out, err = out } = deps;
  const p = parseCommand(['groups', ...args], out, err);
  if (typeof p === 'number') return p;
  const { json, jid, name, folder, trigger, main } = p.values as Record<string, string | undefined>;
  if (p.command === 'groups list')
    return withStore(deps, false, (store) => {
      const groups = store?.groups.all() ?? [];
      const chats = store?.messages.listChats().filter((c) => !store.groups.byJid(c.jid)) ?? [];
      if (json) return (out.write(`${JSON.stringify({ groups, chats }, null, 2)}\n`), 0);
      if (!groups.length) out.write('No registered groups.\n');
      for (const g of groups) {
        const flags = [g.isMain && 'main', g.requiresTrigger ? `trigger ${g.trigger}` : 'no trigger needed'];
        out.write(
          `${g.folder.padEnd(16)} ${g.jid.padEnd(36)} ${g.name} (${flags.filter(Boolean).join(', ')})\n`,
        );
      }
      if (chats.length) out.write(`\nKnown chats not registered:\n`);
      for (const c of chats) out.write(`  ${c.jid.padEnd(36)} ${c.name || '(no name)'} [${c.channel}]\n`);
      return 0;
    });
  if (!jid || !name || !folder) {
    const missing = Object.entries({ jid, name, folder }).filter(([, v]) => !v);
    return (err.write(`error: missing ${missing.map(([k]) => `--${k}`).join(', ')}\n`), 2);
  }
  const isMain = !!main;
  const requiresTrigger = !p.values['no-trigger-required'] && !isMain;
  return withStore(deps, true, (store) => {
    const result = registerGroup(store!, deps.config, {
      jid,
      name,
      folder,
      trigger,
      requiresTrigger,
      isMain,
    });
    if (!result.ok) return (err.write(`error: ${result.error}\n`), 1);
    return (out.write(`Registered ${jid} as '${folder}'${isMain ? ' (main)' : ''}.\n`), 0);
  });
}
