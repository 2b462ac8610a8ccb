import fs from 'node:fs';
import { parseEnv } from 'node:util';

/** Never into process.env: every child inherits that, and secrets must not reach a child or a sandbox. */
export function readEnvFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  // parseEnv takes only `export ` with one space, and glues a line without `=` onto the next key.
  const parsed = parseEnv(text.replace(/^[ \t]*export[ \t]+(?=[A-Za-z_]\w*[ \t]*=)/gm, ''));
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    const name = key.split('\n').at(-1)!.trim();
    if (/^[A-Za-z_]\w*$/.test(name)) values[name] = value ?? '';
  }
  return values;
}

export const SECRET_KEYS = [
  'ANTHROPIC_API_KEY',
  'CLAUDE_CODE_OAUTH_TOKEN',
  'ANTHROPIC_AUTH_TOKEN',
  'ANTHROPIC_BASE_URL',
] as const;
export type Secrets = Partial<Record<(typeof SECRET_KEYS)[number], string>>;

export function readSecrets(envFile: string): Secrets {
  const all = readEnvFile(envFile);
  return Object.fromEntries(SECRET_KEYS.filter((key) => all[key]).map((key) => [key, all[key]]));
}
