import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { folderFor } from '../channels/whatsapp/linker.js';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { registerGroup } from '../groups.js';
import type { ChatInfo } from '../types.js';
import { parseCommand, withStore } from './args.js';

const isWhatsAppGroup = (c: ChatInfo) => c.channel === 'whatsapp' && c.isGroup;
const list = (chats: ChatInfo[]) => chats.map((c) => `\n  ${c.name}  ${c.jid}`).join('');

export function runGroupsCommand(
  args: string[],
  deps: { store?: Store; config: Config; out: Writable; err?: Writable },
): number {
  const { out, err = out } = deps;
  const p = parseCommand(['groups', ...args], out, err);
  if (typeof p === 'number') return p;
  const { json, jid, name, folder, trigger, main } = p.values as Record<string, string | undefined>;
  const fail = (message: string, code = 1) => (err.write(`error: ${message}\n`), code);
  if (p.command === 'groups list')
    return withStore(deps, false, (store) => {
      const groups = store?.groups.all() ?? [];
      const chats = store?.messages.listChats().filter((c) => !store.groups.byJid(c.jid)) ?? [];
      if (json) return (out.write(`${JSON.stringify({ groups, chats }, null, 2)}\n`), 0);
      if (!groups.length) out.write('No registered groups.\n');
      for (const g of groups)
        out.write(
          `${g.folder.padEnd(16)} ${g.jid.padEnd(36)} ${g.name}${g.isMain ? ' (main)' : g.requiresTrigger ? ` (${g.trigger})` : ''}\n`,
        );
      if (chats.length)
        out.write(`\nNot registered (nanoclaw groups register --name <WhatsApp group>):${list(chats)}\n`);
      return 0;
    });
  if (!(jid ? name && folder : name))
    return fail('give --name of a known WhatsApp group, or --jid, --name and --folder', 2);
  // A known WhatsApp group by name; its folder kept, given or derived.
  const target = jid
    ? { jid, name: name!, folder: folder! }
    : withStore(deps, false, (store) => {
        const known = store?.messages.listChats().filter(isWhatsAppGroup) ?? [];
        const found = known.filter((c) => c.name.trim().toLowerCase() === name!.trim().toLowerCase());
        if (found.length > 1)
          return `${found.length} WhatsApp groups are named '${name}'; pick one with --jid:${list(found)}`;
        const chat = found[0];
        if (!chat)
          return `no known WhatsApp group is named '${name}'${known.length ? `; known groups:${list(known)}` : ''}`;
        const taken = (f: string) =>
          !!store!.groups.byFolder(f) || fs.existsSync(path.join(deps.config.groupsDir, f));
        const chosen = folder ?? store!.groups.byJid(chat.jid)?.folder ?? folderFor(chat.name, taken);
        return chosen
          ? { jid: chat.jid, name: chat.name, folder: chosen }
          : `no free folder for '${chat.name}'; give --folder`;
      });
  if (typeof target === 'string') return fail(target);
  const isMain = !!main;
  const requiresTrigger = !p.values['no-trigger-required'] && !isMain;
  return withStore(deps, true, (store) => {
    const r = registerGroup(store!, deps.config, { ...target, trigger, requiresTrigger, isMain });
    return r.ok ? (out.write(`Registered ${target.jid} as '${r.group.folder}'.\n`), 0) : fail(r.error);
  });
}
