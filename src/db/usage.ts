import type { Db } from './store.js';

export interface DailyUsage {
  groupFolder: string;
  day: string;
  inputTokens: number;
  outputTokens: number;
  requests: number;
}

/** Model token usage per group per day (day = YYYY-MM-DD in UTC), recorded by the model proxy. */
export class UsageRepo {
  constructor(private readonly db: Db) {}

  add(groupFolder: string, day: string, inputTokens: number, outputTokens: number): void {
    this.db
      .prepare(
        `INSERT INTO usage_daily (group_folder, day, input_tokens, output_tokens, requests) VALUES (?, ?, ?, ?, 1)
         ON CONFLICT(group_folder, day) DO UPDATE SET
           input_tokens = input_tokens + excluded.input_tokens,
           output_tokens = output_tokens + excluded.output_tokens,
           requests = requests + 1`,
      )
      .run(groupFolder, day, inputTokens, outputTokens);
  }

  forDay(day: string): DailyUsage[] {
    const rows = this.db
      .prepare(
        `SELECT group_folder, day, input_tokens, output_tokens, requests FROM usage_daily WHERE day = ?
         ORDER BY group_folder`,
      )
      .all(day) as Array<Record<string, string | number>>;
    return rows.map((r) => ({
      groupFolder: String(r.group_folder),
      day: String(r.day),
      inputTokens: Number(r.input_tokens),
      outputTokens: Number(r.output_tokens),
      requests: Number(r.requests),
    }));
  }

  tokensFor(groupFolder: string, day: string): number {
    const row = this.db
      .prepare(
        'SELECT input_tokens + output_tokens AS total FROM usage_daily WHERE group_folder = ? AND day = ?',
      )
      .get(groupFolder, day) as { total: number } | undefined;
    return row?.total ?? 0;
  }
}
