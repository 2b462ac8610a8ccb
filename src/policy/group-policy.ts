import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { logger } from '../logger.js';

/**
 * $NANOCLAW_CONFIG_DIR/group-policy.json — limits and sender allowlists per group. It lives outside
 * the project and is never mounted, so no agent can raise its own limits.
 *
 * {
 *   "default": { "outboundPerMinute": 30, "outboundBurst": 10, "maxActiveTasks": 20 },
 *   "groups": {
 *     "family": { "dailyTokenBudget": 200000,
 *                 "senderAllowlist": { "allow": ["4915112345678"], "mode": "trigger-only" } }
 *   }
 * }
 *
 * Missing file = the defaults below, no budget, anyone in a registered chat may trigger.
 * Invalid file = the defaults, and (failing closed) only the owner's own messages may trigger.
 */
const limitsSchema = z
  .object({
    /** Model tokens (input + output) per UTC day, enforced by the model proxy. */
    dailyTokenBudget: z.number().int().positive().optional(),
    /** Outbound chat messages: steady rate and burst of a token bucket. */
    outboundPerMinute: z.number().positive().optional(),
    outboundBurst: z.number().int().positive().optional(),
    /** Active scheduled tasks a group may have. */
    maxActiveTasks: z.number().int().positive().optional(),
    /**
     * Who may trigger the agent. Entries match the sender id or its phone-number part.
     * trigger-only: others' messages are kept as context but never trigger; drop: they are not stored.
     */
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

export type GroupLimits = z.infer<typeof limitsSchema>;

export interface ResolvedLimits {
  dailyTokenBudget: number | undefined;
  outboundPerMinute: number;
  outboundBurst: number;
  maxActiveTasks: number;
  senderAllowlist: { allow: string[]; mode: 'trigger-only' | 'drop' } | undefined;
  /** The policy file is invalid: only the owner's own messages may trigger. */
  ownerOnly: boolean;
}

export const DEFAULT_LIMITS = { outboundPerMinute: 30, outboundBurst: 10, maxActiveTasks: 20 } as const;

export function groupPolicyPath(configDir: string): string {
  return path.join(configDir, 'group-policy.json');
}

type Loaded = { file: z.infer<typeof fileSchema>; invalid: boolean };

/** Reads the policy, re-reading only when the file changed (cheap enough to call per message). */
export function createGroupPolicy(configDir: string): (folder: string) => ResolvedLimits {
  const file = groupPolicyPath(configDir);
  let cacheKey = '';
  let loaded: Loaded = { file: {}, invalid: false };
  const load = (): Loaded => {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(file);
    } catch {
      stat = undefined;
    }
    const key = stat ? `${stat.mtimeMs}:${stat.size}` : 'missing';
    if (key === cacheKey) return loaded;
    cacheKey = key;
    if (!stat) return (loaded = { file: {}, invalid: false });
    try {
      const parsed = fileSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
      if (parsed.success) return (loaded = { file: parsed.data, invalid: false });
      const problems = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`)
        .join('; ');
      logger.error({ file, problems }, 'group policy invalid: default limits, only the owner may trigger');
    } catch (err) {
      logger.error(
        { file, err: (err as Error).message },
        'group policy unreadable: default limits, owner only',
      );
    }
    return (loaded = { file: {}, invalid: true });
  };
  return (folder) => {
    const { file: policy, invalid } = load();
    const merged: GroupLimits = { ...policy.default, ...policy.groups?.[folder] };
    return {
      dailyTokenBudget: merged.dailyTokenBudget,
      outboundPerMinute: merged.outboundPerMinute ?? DEFAULT_LIMITS.outboundPerMinute,
      outboundBurst: merged.outboundBurst ?? DEFAULT_LIMITS.outboundBurst,
      maxActiveTasks: merged.maxActiveTasks ?? DEFAULT_LIMITS.maxActiveTasks,
      senderAllowlist: merged.senderAllowlist,
      ownerOnly: invalid,
    };
  };
}

/** May this sender trigger the agent (and, in drop mode, be stored at all)? The owner always may. */
export function senderAllowed(limits: ResolvedLimits, sender: string, isFromMe: boolean): boolean {
  if (isFromMe) return true;
  if (limits.ownerOnly) return false;
  if (!limits.senderAllowlist) return true;
  const phone = sender.split('@')[0]?.split(':')[0] ?? sender;
  return limits.senderAllowlist.allow.some((entry) => entry === sender || entry.replace(/^\+/, '') === phone);
}
