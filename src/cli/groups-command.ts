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
      const section = (title: string, list: ChatInfo[]) =>
        list.length &&
        out.write(
          `\n${title}:\n${list.map((c) => `  ${(c.name || '(no name)').padEnd(30)} ${c.jid} [${c.channel}]\n`).join('')}`,
        );
      section(
        'WhatsApp groups not registered (nanoclaw groups register --name <name>)',
        chats.filter(isWhatsAppGroup),
      );
      section(
        'Other known chats not registered',
        chats.filter((c) => !isWhatsAppGroup(c)),
      );
      return 0;
    });
  if (!jid && !name)
    return (err.write('error: missing --name (a known WhatsApp group), or --jid, --name and --folder\n'), 2);
  if (jid && (!name || !folder)) {
    const missing = Object.entries({ name, folder }).filter(([, v]) => !v);
    return (err.write(`error: missing ${missing.map(([k]) => `--${k}`).join(', ')}\n`), 2);
  }
  const target = jid ? { jid, name: name!, folder: folder! } : findByName(deps, name!, folder);
  if ('error' in target) return (err.write(`error: ${target.error}\n`), 1);
  const isMain = !!main;
  const requiresTrigger = !p.values['no-trigger-required'] && !isMain;
  return withStore(deps, true, (store) => {
    const result = registerGroup(store!, deps.config, { ...target, trigger, requiresTrigger, isMain });
    if (!result.ok) return (err.write(`error: ${result.error}\n`), 1);
    const { folder: used } = result.group;
    return (out.write(`Registered ${target.jid} as '${used}'${isMain ? ' (main)' : ''}.\n`), 0);
  });
}

/** A known WhatsApp group by its exact name (any case); its folder kept, given, or derived from the name. */
function findByName(
  deps: { store?: Store; config: Config },
  name: string,
  folder: string | undefined,
): { jid: string; name: string; folder: string } | { error: string } {
  return withStore(deps, false, (store) => {
    const known = store?.messages.listChats().filter(isWhatsAppGroup) ?? [];
    const wanted = name.trim().toLowerCase();
    const found = known.filter((c) => c.name.trim().toLowerCase() === wanted);
    const list = (chats: ChatInfo[]) => chats.map((c) => `\n  ${c.name || '(no name)'}  ${c.jid}`).join('');
    if (found.length > 1)
      return {
        error: `${found.length} WhatsApp groups are named '${name}'; pick one with --jid <id> --name <name> --folder <folder>:${list(found)}`,
      };
    const chat = found[0];
    if (!chat)
      return {
        error: known.length
          ? `no known WhatsApp group is named '${name}'; known groups:${list(known)}`
          : `no known WhatsApp group is named '${name}' (groups become known once WhatsApp is linked and the assistant runs)`,
      };
    const taken = (f: string) =>
      !!store!.groups.byFolder(f) || fs.existsSync(path.join(deps.config.groupsDir, f));
    const chosen = folder ?? store!.groups.byJid(chat.jid)?.folder ?? folderFor(chat.name, taken);
    if (!chosen) return { error: `no free folder name for '${chat.name}'; give one with --folder` };
    return { jid: chat.jid, name: chat.name, folder: chosen };
  });
}
