import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { logger } from '../logger.js';
import { zodProblems } from '../util/zod-problems.js';

/**
 * $NANOCLAW_CONFIG_DIR/group-policy.json (never mounted): `default` and per-folder `groups` limits.
 * Missing: the defaults, no budget, anyone may trigger. Invalid: the defaults, and only the owner may trigger.
 */
const limitsSchema = z
  .object({
    /** Model tokens (input + output) per UTC day. */
    dailyTokenBudget: z.number().int().positive().optional(),
    outboundPerMinute: z.number().positive().optional(),
    outboundBurst: z.number().int().positive().optional(),
    maxActiveTasks: z.number().int().positive().optional(),
    /** Who may trigger; others' messages are context only (drop: not stored). */
    senderAllowlist: z
      .object({
        allow: z.array(z.string().min(1)),
        mode: z.enum(['trigger-only', 'drop']).default('trigger-only'),
      })
      .strict()
      .optional(),
  })
  .strict();

const fileSchema = z
  .object({ default: limitsSchema.optional(), groups: z.record(z.string(), limitsSchema).optional() })
  .strict();

const DEFAULTS = { outboundPerMinute: 30, outboundBurst: 10, maxActiveTasks: 20 };
/** ownerOnly: the file is invalid, so only the owner may trigger. */
export type ResolvedLimits = z.infer<typeof limitsSchema> & typeof DEFAULTS & { ownerOnly: boolean };

export function groupPolicyPath(configDir: string): string {
  return path.join(configDir, 'group-policy.json');
}

/** Re-reads the file only when it changed: cheap enough per message. */
export function createGroupPolicy(configDir: string): (folder: string) => ResolvedLimits {
  const file = groupPolicyPath(configDir);
  let cacheKey = '';
  let policy: z.infer<typeof fileSchema> = {};
  let invalid = false;
  const load = () => {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(file);
    } catch {
      // missing
    }
    const key = stat ? `${stat.mtimeMs}:${stat.size}` : 'missing';
    if (key === cacheKey) return;
    cacheKey = key;
    policy = {};
    invalid = false;
    if (!stat) return;
    try {
      const parsed = fileSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
      if (parsed.success) return void (policy = parsed.data);
      logger.error(
        { file, problems: zodProblems(parsed.error) },
        'group policy invalid: default limits, owner only',
      );
    } catch (err) {
      logger.error({ file, err: String(err) }, 'group policy unreadable: default limits, owner only');
    }
    invalid = true;
  };
  return (folder) => {
    load();
    return { ...DEFAULTS, ...policy.default, ...policy.groups?.[folder], ownerOnly: invalid };
  };
}

/** May this sender trigger the agent (in drop mode: be stored)? The owner always may. */
export function senderAllowed(limits: ResolvedLimits, sender: string, isFromMe: boolean): boolean {
  if (isFromMe) return true;
  if (limits.ownerOnly) return false;
  if (!limits.senderAllowlist) return true;
  const phone = sender.split('@')[0]?.split(':')[0] ?? sender;
  return limits.senderAllowlist.allow.some((entry) => entry === sender || entry.replace(/^\+/, '') === phone);
}
