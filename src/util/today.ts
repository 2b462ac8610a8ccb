/** The UTC calendar day (`2026-11-30`): daily budgets and usage reset at midnight UTC. */
export function todayUtc(now = new Date()): string {
  return now.toISOString().slice(0, 10);
}
