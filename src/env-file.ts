import fs from 'node:fs';

/**
 * Reads KEY=VALUE lines from a .env file into a plain object. Deliberately never touches
 * process.env: anything there is inherited by every child process, and secrets must not reach a
 * child or a sandbox. Missing file = empty object.
 */
export function readEnvFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  const values: Record<string, string> = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2] ?? '';
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) {
      value = value.slice(1, -1);
    } else {
      value = value.replace(/\s+#.*$/, '');
    }
    values[match[1]!] = value;
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

/** Only the model credentials and upstream URL; used by the model proxy alone. */
export function readSecrets(envFile: string): Secrets {
  const all = readEnvFile(envFile);
  const secrets: Secrets = {};
  for (const key of SECRET_KEYS) if (all[key]) secrets[key] = all[key];
  return secrets;
}
