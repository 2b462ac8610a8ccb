import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_UID, PROJECT_ROOT } from '../../src/config.js';
import { agentSkillsDir, syncAgentSkills } from '../../src/sandbox/agent-skills.js';

/** Skills for Claude Code working on the repo, and skills copied into every agent's sandbox. */
const SKILL_ROOTS = [
  path.join(PROJECT_ROOT, '.claude', 'skills'),
  agentSkillsDir({ projectRoot: PROJECT_ROOT }),
];
/** Docs that point people (and Claude Code) at files; a renamed file must not leave them stale. */
const DOCS = [
  'README.md',
  'ARCHITECTURE.md',
  'SECURITY.md',
  'CLAUDE.md',
  'groups/main/CLAUDE.md',
  'groups/global/CLAUDE.md',
];

const REPO_PATH = /^(src|container|test|scripts|groups|bench|\.claude|\.ci)\/[A-Za-z0-9_.\-/]*$/;
const ROOT_FILES = new Set(['README.md', 'ARCHITECTURE.md', 'SECURITY.md', 'CLAUDE.md', 'package.json']);

function skillFiles(): string[] {
  return SKILL_ROOTS.flatMap((root) => fs.readdirSync(root).map((name) => path.join(root, name, 'SKILL.md')));
}

interface PathMention {
  path: string;
  /** Written as "`path` (new)": a file the skill tells Claude Code to create. */
  isNew: boolean;
}

/** Backticked repo paths in the prose (fenced code blocks are commands, not references). */
function repoPathsIn(markdown: string): PathMention[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '');
  const mentions: PathMention[] = [];
  for (const match of prose.matchAll(/`([^`\n]+)`(\s*\(new\))?/g)) {
    const text = match[1]!.trim().replace(/[#:].*$/, '');
    const isBuildOutput = /(^|\/)(dist|node_modules)(\/|$)/.test(text);
    if (isBuildOutput || /[<>*…]/.test(text)) continue;
    if (REPO_PATH.test(text) || ROOT_FILES.has(text)) mentions.push({ path: text, isNew: Boolean(match[2]) });
  }
  return mentions;
}

function missingPaths(file: string): string[] {
  const missing: string[] = [];
  for (const mention of repoPathsIn(fs.readFileSync(file, 'utf8'))) {
    const full = path.join(PROJECT_ROOT, mention.path);
    if (!mention.isNew) {
      if (!fs.existsSync(full)) missing.push(mention.path);
      continue;
    }
    // A file to create must land in an existing part of the tree (catches `scr/channels/...`).
    let dir = path.dirname(full);
    while (!fs.existsSync(dir)) dir = path.dirname(dir);
    if (dir === PROJECT_ROOT) missing.push(`${mention.path} (new, but no part of its directory exists)`);
  }
  return missing;
}

describe('skills', () => {
  it('finds the set-up skills and the container skills', () => {
    const names = skillFiles().map((f) => path.basename(path.dirname(f)));
    expect(names).toEqual(
      expect.arrayContaining([
        'setup',
        'customize',
        'debug',
        'add-telegram',
        'convert-to-apple-container',
        'browser',
      ]),
    );
  });

  it.each(skillFiles().map((f) => [path.relative(PROJECT_ROOT, f), f]))(
    '%s has front matter whose name is its directory, and a description',
    (_rel, file) => {
      const text = fs.readFileSync(file, 'utf8');
      const front = /^---\n([\s\S]*?)\n---\n/.exec(text)?.[1];
      expect(front, 'front matter').toBeDefined();
      expect(front).toMatch(new RegExp(`^name: ${path.basename(path.dirname(file))}$`, 'm'));
      expect(front).toMatch(/^description: .{40,}$/m);
    },
  );

  it.each(
    [...skillFiles(), ...DOCS.map((d) => path.join(PROJECT_ROOT, d))].map((f) => [
      path.relative(PROJECT_ROOT, f),
      f,
    ]),
  )('every repo path %s names exists', (_rel, file) => {
    expect(missingPaths(file)).toEqual([]);
  });

  it('reads paths from prose, skips commands, placeholders and build output, and notices files to create', () => {
    const md = [
      'See `src/router.ts` and `container/skills/` then `src/cli/start.ts:12`.',
      'Create `src/channels/telegram/bot.ts` (new).',
      'Not paths: `npm start`, `groups/<folder>/CLAUDE.md`, `test/e2e/security-*.test.ts`, `dist/cli/main.js`.',
      '```sh\ncat src/not-a-reference.ts\n```',
    ].join('\n');
    expect(repoPathsIn(md)).toEqual([
      { path: 'src/router.ts', isNew: false },
      { path: 'container/skills/', isNew: false },
      { path: 'src/cli/start.ts', isNew: false },
      { path: 'src/channels/telegram/bot.ts', isNew: true },
    ]);
  });
});

describe('container skills in each group’s session', () => {
  const temps: string[] = [];
  afterEach(() => {
    for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  const tmp = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanoclaw-skills-'));
    temps.push(dir);
    return dir;
  };

  it('copies the project’s container skills into data/sessions/<folder>/.claude/skills', () => {
    const sessionDir = path.join(tmp(), 'data', 'sessions', 'family', '.claude');
    const copied = syncAgentSkills({
      sourceDir: agentSkillsDir({ projectRoot: PROJECT_ROOT }),
      sessionDir,
    });
    expect(copied).toContain('browser');
    expect(fs.readFileSync(path.join(sessionDir, 'skills', 'browser', 'SKILL.md'), 'utf8')).toBe(
      fs.readFileSync(path.join(PROJECT_ROOT, 'container', 'skills', 'browser', 'SKILL.md'), 'utf8'),
    );
  });

  it('replaces a stale copy, keeps skills the agent made, and keeps execute bits', () => {
    const root = tmp();
    const source = path.join(root, 'source');
    fs.mkdirSync(path.join(source, 'pdf', 'scripts'), { recursive: true });
    fs.writeFileSync(path.join(source, 'pdf', 'SKILL.md'), 'v2');
    fs.writeFileSync(path.join(source, 'pdf', 'scripts', 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    fs.mkdirSync(path.join(source, 'not-a-skill'));
    const sessionDir = path.join(root, 'session', '.claude');
    fs.mkdirSync(path.join(sessionDir, 'skills', 'pdf'), { recursive: true });
    fs.writeFileSync(path.join(sessionDir, 'skills', 'pdf', 'SKILL.md'), 'v1');
    fs.writeFileSync(path.join(sessionDir, 'skills', 'pdf', 'leftover.txt'), 'old');
    fs.mkdirSync(path.join(sessionDir, 'skills', 'mine'));
    fs.writeFileSync(path.join(sessionDir, 'skills', 'mine', 'SKILL.md'), 'the agent’s own');

    expect(syncAgentSkills({ sourceDir: source, sessionDir })).toEqual(['pdf']);
    const skills = path.join(sessionDir, 'skills');
    expect(fs.readFileSync(path.join(skills, 'pdf', 'SKILL.md'), 'utf8')).toBe('v2');
    expect(fs.existsSync(path.join(skills, 'pdf', 'leftover.txt'))).toBe(false);
    expect(fs.statSync(path.join(skills, 'pdf', 'scripts', 'run.sh')).mode & 0o111).not.toBe(0);
    expect(fs.readFileSync(path.join(skills, 'mine', 'SKILL.md'), 'utf8')).toBe('the agent’s own');
    expect(fs.existsSync(path.join(skills, 'not-a-skill'))).toBe(false);
  });

  it('never writes through links an agent planted in its session dir', () => {
    const root = tmp();
    const source = path.join(root, 'source');
    fs.mkdirSync(path.join(source, 'browser'), { recursive: true });
    fs.writeFileSync(path.join(source, 'browser', 'SKILL.md'), 'skill');
    const outside = path.join(root, 'host-secrets');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'SKILL.md'), 'precious');

    // A link in place of one skill's directory…
    const sessionDir = path.join(root, 'session', '.claude');
    fs.mkdirSync(path.join(sessionDir, 'skills'), { recursive: true });
    fs.symlinkSync(outside, path.join(sessionDir, 'skills', 'browser'));
    syncAgentSkills({ sourceDir: source, sessionDir });
    expect(fs.readFileSync(path.join(outside, 'SKILL.md'), 'utf8')).toBe('precious');
    expect(fs.lstatSync(path.join(sessionDir, 'skills', 'browser')).isDirectory()).toBe(true);

    // …and in place of the whole skills directory.
    const other = path.join(root, 'other', '.claude');
    fs.mkdirSync(other, { recursive: true });
    fs.symlinkSync(outside, path.join(other, 'skills'));
    syncAgentSkills({ sourceDir: source, sessionDir: other });
    expect(fs.readdirSync(outside)).toEqual(['SKILL.md']);
    expect(fs.readFileSync(path.join(outside, 'SKILL.md'), 'utf8')).toBe('precious');
    expect(fs.readFileSync(path.join(other, 'skills', 'browser', 'SKILL.md'), 'utf8')).toBe('skill');
  });

  it('hands the copies to the sandbox user when asked', () => {
    // As root (CI) the real sandbox user; otherwise the only owner a non-root user may give.
    const owner =
      process.getuid?.() === 0
        ? { uid: DEFAULT_SANDBOX_UID, gid: DEFAULT_SANDBOX_UID }
        : { uid: process.getuid!(), gid: process.getgid!() };
    const sessionDir = path.join(tmp(), '.claude');
    syncAgentSkills({ sourceDir: agentSkillsDir({ projectRoot: PROJECT_ROOT }), sessionDir, owner });
    for (const p of [
      sessionDir,
      path.join(sessionDir, 'skills'),
      path.join(sessionDir, 'skills', 'browser', 'SKILL.md'),
    ])
      expect(fs.lstatSync(p)).toMatchObject({ uid: owner.uid, gid: owner.gid });
  });

  it('does nothing without a skills directory', () => {
    const root = tmp();
    expect(syncAgentSkills({ sourceDir: path.join(root, 'none'), sessionDir: path.join(root, 's') })).toEqual(
      [],
    );
    expect(fs.existsSync(path.join(root, 's'))).toBe(false);
  });
});
