// A token bucket per key (`burst` at once, refilled at `perMinute`): paces, never refuses.
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  // 0 when a token was taken (`force`: even if none is left), else ms until one is.
  take(key: string, perMinute: number, burst: number, force = false): number {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 60_000) * perMinute);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens < 1 && !force) return Math.ceil(((1 - b.tokens) * 60_000) / perMinute);
    b.tokens = Math.max(0, b.tokens - 1);
    return 0;
  }
}
