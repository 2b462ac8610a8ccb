import fs from 'node:fs';
import { zodProblems } from '../contract/ipc.js';
import path from 'node:path';
import { z } from 'zod';
import { logger } from '../logger.js';

/** undefined when missing, the problem when unreadable or invalid. */
export function readPolicyFile<T>(file: string, schema: z.ZodType<T>): T | string | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
    return parsed.success ? parsed.data : `${file}: ${zodProblems(parsed.error)}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      return `cannot read ${file}: ${(err as Error).message}`;
  }
}

/** Reloads only on change: cheap per message, and a problem is logged once. */
export function whenChanged<T>(file: string, load: () => T): () => T {
  let key: string | undefined;
  let value: T;
  return () => {
    let next = '';
    try {
      const st = fs.statSync(file);
      next = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      // load() says why
    }
    if (next !== key) [key, value] = [next, load()];
    return value;
  };
}

const count = z.number().int().positive().optional();
const limitsSchema = z.strictObject({
  dailyTokenBudget: count, // model tokens (input + output) per UTC day
  outboundPerMinute: z.number().positive().optional(),
  outboundBurst: count,
  maxActiveTasks: count,
  // Who may trigger; others' messages are context only (drop: not stored).
  senderAllowlist: z
    .strictObject({
      allow: z.array(z.string().min(1)),
      mode: z.enum(['trigger-only', 'drop']).default('trigger-only'),
    })
    .optional(),
});
const fileSchema = z.strictObject({
  default: limitsSchema.optional(),
  groups: z.record(z.string(), limitsSchema).optional(),
});

const DEFAULTS = { outboundPerMinute: 30, outboundBurst: 10, maxActiveTasks: 20 };
/** ownerOnly: the file is invalid, so only the owner may trigger. */
export type ResolvedLimits = z.infer<typeof limitsSchema> & typeof DEFAULTS & { ownerOnly: boolean };

export function createGroupPolicy(configDir: string): (folder: string) => ResolvedLimits {
  const file = path.join(configDir, 'group-policy.json');
  const read = whenChanged(file, () => {
    const policy = readPolicyFile(file, fileSchema);
    if (typeof policy !== 'string') return { policy: policy ?? {}, ownerOnly: false };
    logger.error({ problem: policy }, 'group policy invalid: default limits, owner only');
    return { policy: {}, ownerOnly: true };
  });
  return (folder) => {
    const { policy, ownerOnly } = read();
    return { ...DEFAULTS, ...policy.default, ...policy.groups?.[folder], ownerOnly };
  };
}

export function senderAllowed(limits: ResolvedLimits, sender: string, isFromMe: boolean): boolean {
  if (isFromMe) return true;
  if (limits.ownerOnly) return false;
  const phone = sender.split('@')[0]!.split(':')[0];
  const allow = limits.senderAllowlist?.allow;
  return !allow || allow.some((entry) => entry === sender || entry.replace(/^\+/, '') === phone);
}
