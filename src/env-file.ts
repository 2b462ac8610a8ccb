import fs from 'node:fs';

/**
 * KEY=VALUE lines of a .env file (missing: empty). Never into process.env: every child inherits
 * that, and secrets must not reach a child or a sandbox.
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

/** The model credentials and upstream URL, for the model proxy alone. */
export function readSecrets(envFile: string): Secrets {
  const all = readEnvFile(envFile);
  const secrets: Secrets = {};
  for (const key of SECRET_KEYS) if (all[key]) secrets[key] = all[key];
  return secrets;
}
