import { camel, type Db } from './store.js';

interface DailyUsage {
  groupFolder: string;
  day: string;
  inputTokens: number;
  outputTokens: number;
  requests: number;
}

/** Model tokens per group per UTC day (YYYY-MM-DD). */
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
    return this.db
      .prepare('SELECT * FROM usage_daily WHERE day = ? ORDER BY group_folder')
      .all(day)
      .map(camel<DailyUsage>);
  }

  tokensFor(groupFolder: string, day: string): number {
    const sql = 'SELECT input_tokens + output_tokens FROM usage_daily WHERE group_folder = ? AND day = ?';
    return (this.db.prepare(sql).pluck().get(groupFolder, day) as number | undefined) ?? 0;
  }
}
