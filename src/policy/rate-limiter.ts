/** A token bucket per key (`burst` at once, refilled at `perMinute`), so no agent floods a chat. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  tryTake(key: string, perMinute: number, burst: number): boolean {
    const now = Date.now();
    const b = this.buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 60_000) * perMinute);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }
}
