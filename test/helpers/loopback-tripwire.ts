import net from 'node:net';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

/** The host a Socket#connect call is about to dial, or undefined for a unix socket. */
function dialledHost(args: unknown[]): string | undefined {
  // net.connect() hands its normalised [options, callback] array to Socket#connect.
  const first = Array.isArray(args[0]) ? (args[0][0] as unknown) : args[0];
  if (first && typeof first === 'object') {
    const options = first as { path?: string; host?: string };
    if (options.path) return undefined;
    return options.host ?? 'localhost';
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return undefined; // a socket path
  return typeof args[1] === 'string' ? args[1] : 'localhost';
}

/**
 * Guards this test process against sending a single packet beyond loopback: every TCP dial to
 * another address is refused before it leaves and recorded, so a test can also assert that a
 * refusal happened before any connection was attempted.
 */
export function installLoopbackTripwire(): { attempts: string[]; uninstall(): void } {
  const attempts: string[] = [];
  const original = net.Socket.prototype.connect;
  const guarded = function (this: net.Socket, ...args: unknown[]) {
    const host = dialledHost(args);
    if (host !== undefined && !LOOPBACK.has(host)) {
      attempts.push(host);
      process.nextTick(() => this.destroy(new Error(`test tripwire: no connections to ${host}`)));
      return this;
    }
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  };
  net.Socket.prototype.connect = guarded as typeof original;
  return {
    attempts,
    uninstall: () => {
      net.Socket.prototype.connect = original;
    },
  };
}
