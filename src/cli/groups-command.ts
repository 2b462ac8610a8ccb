import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { folderFor } from '../channels/whatsapp/linker.js';
import type { Config } from '../config.js';
import type { Store } from '../db/store.js';
import { registerGroup } from '../groups.js';
import type { ChatInfo } from '../types.js';
import { parseCommand, withStore } from './args.js';

const list = (chats: ChatInfo[]) => chats.map((c) => `\n  ${c.name}  ${c.jid}`).join('');

export function runGroupsCommand(
  args: string[],
  deps: { store?: Store; config: Config; out: Writable; err?: Writable },
): number {
  const { out, err = out } = deps;
  const p = parseCommand(['groups', ...args], out, err);
  if (typeof p === 'number') return p;
  const { json, jid, name, folder, trigger, main } = p.values;
  const fail = (message: string, code = 1) => (err.write(`error: ${message}\n`), code);
  if (p.command === 'groups list')
    return withStore(deps, false, (store) => {
      const groups = store?.groups.all() ?? [];
      const chats = store?.messages.listChats().filter((c) => !store.groups.byJid(c.jid)) ?? [];
      if (json) return (out.write(`${JSON.stringify({ groups, chats }, null, 2)}\n`), 0);
      for (const g of groups)
        out.write(
          `${g.folder}  ${g.jid}  ${g.name}${g.isMain ? ' (main)' : g.requiresTrigger ? ` (${g.trigger})` : ''}\n`,
        );
      if (!groups.length) out.write('No registered groups.\n');
      if (chats.length)
        out.write(`\nNot registered (nanoclaw groups register --name <WhatsApp group>):${list(chats)}\n`);
      return 0;
    });
  if (!(jid ? name && folder : name))
    return fail('give --name of a known WhatsApp group, or --jid, --name and --folder', 2);
  return withStore(deps, !!jid || fs.existsSync(deps.config.dbPath), (store) => {
    const key = (s: string) => s.trim().toLowerCase();
    const found =
      store?.messages
        .listChats()
        .filter((c) => c.channel === 'whatsapp' && c.isGroup && key(c.name) === key(name!)) ?? [];
    const chat = jid ? { jid, name: name! } : found[0];
    if (!chat) return fail(`no known WhatsApp group is named '${name}'; see nanoclaw groups list`);
    if (!jid && found[1])
      return fail(`${found.length} WhatsApp groups are named '${name}'; pick one with --jid:${list(found)}`);
    // A registered group keeps its folder; else the given one, or one derived from its name.
    const taken = (f: string) =>
      !!store!.groups.byFolder(f) || fs.existsSync(path.join(deps.config.groupsDir, f));
    const chosen = folder ?? store!.groups.byJid(chat.jid)?.folder ?? folderFor(chat.name, taken);
    if (!chosen) return fail(`no free folder for '${chat.name}'; give --folder`);
    const requiresTrigger = !p.values['no-trigger-required'] && !main;
    const r = registerGroup(store!, deps.config, {
      ...chat,
      folder: chosen,
      trigger,
      requiresTrigger,
      isMain: !!main,
    });
    return r.ok ? (out.write(`Registered ${chat.jid} as '${r.group.folder}'.\n`), 0) : fail(r.error);
  });
}
