import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { readEnvFile, readSecrets } from '../../src/env-file.js';
import { logger } from '../../src/logger.js';

const temps: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function homeWithEnv(text: string): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-env-'));
  temps.push(home);
  fs.writeFileSync(path.join(home, '.env'), text);
  return home;
}

const parse = (text: string) => readEnvFile(path.join(homeWithEnv(text), '.env'));

describe('readEnvFile', () => {
  it('reads plain, quoted and spaced values', () => {
    expect(parse(`A=1\nB="two words"\nC='single'\n  D = spaced  \nE=\nF=a=b\r\nG=\`back\`\n`)).toEqual({
      A: '1',
      B: 'two words',
      C: 'single',
      D: 'spaced',
      E: '',
      F: 'a=b',
      G: 'back',
    });
  });

  it('drops comments: whole lines and after values, but not inside quotes', () => {
    expect(parse(`# a comment\nA=value # note\nB="keeps # this" # note\n  # indented\n`)).toEqual({
      A: 'value',
      B: 'keeps # this',
    });
  });

  it('expands \\n in double quotes only, and keeps multiline quoted values', () => {
    expect(parse(`A="a\\nb"\nB='a\\nb'\nC="line one\nline two"\nD=after\n`)).toEqual({
      A: 'a\nb',
      B: 'a\\nb',
      C: 'line one\nline two',
      D: 'after',
    });
  });

  it('strips export prefixes, however spaced', () => {
    expect(parse(`export A=1\n  export B=2\nexport\tC=3\nexport   D="4"\n`)).toEqual({
      A: '1',
      B: '2',
      C: '3',
      D: '4',
    });
  });

  it('ignores lines that are not settings without losing the next one', () => {
    expect(parse(`not a setting\nA=1\n\nalso junk\n\nB=2\n`)).toEqual({ A: '1', B: '2' });
  });

  it('is empty for a missing file and never touches process.env', () => {
    expect(readEnvFile('/nonexistent/.env')).toEqual({});
    parse('NANOCLAW_ENV_FILE_TEST=1\n');
    expect(process.env.NANOCLAW_ENV_FILE_TEST).toBeUndefined();
  });

  it('gives the model proxy only the secret keys', () => {
    const home = homeWithEnv(`ANTHROPIC_API_KEY="sk-ant-x" # key\nASSISTANT_NAME=Bob\nANTHROPIC_BASE_URL=\n`);
    expect(readSecrets(path.join(home, '.env'))).toEqual({ ANTHROPIC_API_KEY: 'sk-ant-x' });
  });
});

describe('unknown settings in .env', () => {
  const load = (home: string) =>
    loadConfig({ NANOCLAW_HOME: home, NANOCLAW_CONFIG_DIR: path.join(home, 'config') });

  it('warns once about a misspelled setting, naming the closest known one', () => {
    const warn = vi.spyOn(logger, 'warn');
    const home = homeWithEnv(`ASISTANT_NAME=Bob\nexport MAX_CONCURENT_CONTAINERS=2\n`);
    const config = load(home);
    expect(config.assistantName).toBe('Andy');
    const messages = warn.mock.calls.map((call) => String(call[0]));
    expect(messages).toEqual([
      expect.stringContaining('ASISTANT_NAME in .env; did you mean ASSISTANT_NAME?'),
      expect.stringContaining('MAX_CONCURENT_CONTAINERS in .env; did you mean MAX_CONCURRENT_CONTAINERS?'),
    ]);
    load(home);
    expect(warn).toHaveBeenCalledTimes(2);
  });

  it('says nothing about known settings, secrets or LOG_LEVEL', () => {
    const warn = vi.spyOn(logger, 'warn');
    load(homeWithEnv(`ASSISTANT_NAME=Bob\nANTHROPIC_API_KEY=sk\nLOG_LEVEL=debug\nTZ=UTC\n`));
    expect(warn).not.toHaveBeenCalled();
  });

  it('warns without a guess when nothing is close', () => {
    const warn = vi.spyOn(logger, 'warn');
    load(homeWithEnv(`SOMETHING_ELSE_ENTIRELY=1\n`));
    expect(warn).toHaveBeenCalledOnce();
    expect(String(warn.mock.calls[0]![0])).not.toContain('did you mean');
  });
});
