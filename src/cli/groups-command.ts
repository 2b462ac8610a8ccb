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
const list = (chats: ChatInfo[], pad = 0) =>
  chats
    .map((c) => `\n  ${(c.name || '(no name)').padEnd(pad)}  ${c.jid}${pad ? ` [${c.channel}]` : ''}`)
    .join('');

/** `nanoclaw groups …`; without a store given it opens config.dbPath (read-only to list). */
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
          `${g.folder.padEnd(16)} ${g.jid.padEnd(36)} ${g.name} (${g.isMain ? 'main, ' : ''}${g.requiresTrigger ? `trigger ${g.trigger}` : 'no trigger needed'})\n`,
        );
      const wa = chats.filter(isWhatsAppGroup);
      const other = chats.filter((c) => !isWhatsAppGroup(c));
      if (wa.length)
        out.write(
          `\nWhatsApp groups not registered (nanoclaw groups register --name <name>):${list(wa, 28)}\n`,
        );
      if (other.length) out.write(`\nOther known chats not registered:${list(other, 28)}\n`);
      return 0;
    });
  if (!jid && !name) return fail('missing --name (a known WhatsApp group), or --jid, --name and --folder', 2);
  if (jid && (!name || !folder))
    return fail(`missing ${[!name && '--name', !folder && '--folder'].filter(Boolean).join(', ')}`, 2);
  // A known WhatsApp group by its exact name (any case); its folder kept, given, or derived from the name.
  const target = jid
    ? { jid, name: name!, folder: folder! }
    : withStore(deps, false, (store) => {
        const known = store?.messages.listChats().filter(isWhatsAppGroup) ?? [];
        const found = known.filter((c) => c.name.trim().toLowerCase() === name!.trim().toLowerCase());
        if (found.length > 1)
          return `${found.length} WhatsApp groups are named '${name}'; pick one with --jid <id> --name <name> --folder <folder>:${list(found)}`;
        const chat = found[0];
        if (!chat)
          return `no known WhatsApp group is named '${name}'${known.length ? `; known groups:${list(known)}` : ' (groups become known once WhatsApp is linked and the assistant runs)'}`;
        const taken = (f: string) =>
          !!store!.groups.byFolder(f) || fs.existsSync(path.join(deps.config.groupsDir, f));
        const chosen = folder ?? store!.groups.byJid(chat.jid)?.folder ?? folderFor(chat.name, taken);
        return chosen
          ? { jid: chat.jid, name: chat.name, folder: chosen }
          : `no free folder name for '${chat.name}'; give one with --folder`;
      });
  if (typeof target === 'string') return fail(target);
  const isMain = !!main;
  const requiresTrigger = !p.values['no-trigger-required'] && !isMain;
  return withStore(deps, true, (store) => {
    const result = registerGroup(store!, deps.config, { ...target, trigger, requiresTrigger, isMain });
    if (!result.ok) return fail(result.error);
    return (
      out.write(`Registered ${target.jid} as '${result.group.folder}'${isMain ? ' (main)' : ''}.\n`),
      0
    );
  });
}
