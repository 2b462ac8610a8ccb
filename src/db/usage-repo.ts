import { query, type Db } from './store.js';

export function usageRepo(db: Db) {
  const { run, all, value } = query(db);
  return {
    add(groupFolder: string, day: string, inputTokens: number, outputTokens: number): void {
      run(
        `INSERT INTO usage_daily (group_folder, day, input_tokens, output_tokens, requests) VALUES (?, ?, ?, ?, 1)
         ON CONFLICT(group_folder, day) DO UPDATE SET input_tokens = input_tokens + excluded.input_tokens,
           output_tokens = output_tokens + excluded.output_tokens, requests = requests + 1`,
        groupFolder,
        day,
        inputTokens,
        outputTokens,
      );
    },
    forDay: (day: string) =>
      all<{ groupFolder: string; day: string; inputTokens: number; outputTokens: number; requests: number }>(
        'SELECT * FROM usage_daily WHERE day = ? ORDER BY group_folder',
        day,
      ),
    tokensFor: (groupFolder: string, day: string) =>
      value<number | undefined>(
        'SELECT input_tokens + output_tokens FROM usage_daily WHERE group_folder = ? AND day = ?',
        groupFolder,
        day,
      ) ?? 0,
  };
}
