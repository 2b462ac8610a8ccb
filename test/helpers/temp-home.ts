import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';

/** A fresh NANOCLAW_HOME (and config dir) in a temp directory, with a config pointing at it. */
export function tempHome(overrides: Record<string, string> = {}): {
  home: string;
  config: Config;
  cleanup(): void;
} {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-test-'));
  const config = loadConfig({
    NANOCLAW_HOME: home,
    NANOCLAW_CONFIG_DIR: path.join(home, 'config'),
    TZ: 'UTC',
    ...overrides,
  });
  return { home, config, cleanup: () => fs.rmSync(home, { recursive: true, force: true }) };
}
