import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMountPlan, prepareGroupDirs, projectMasks } from '../../src/sandbox/mount-plan.js';
import type { MountSpec } from '../../src/sandbox/runtime.js';
import { makeTempDir, testConfig, testGroup } from './sandbox-helpers.js';

const byContainerPath = (plan: MountSpec[]) => Object.fromEntries(plan.map((m) => [m.containerPath, m]));

describe('mount plan', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = makeTempDir();
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('gives a non-main group only its own folders, global memory read-only, and its extras', () => {
    const home = path.join(tmp, 'plan-nonmain');
    const config = testConfig(home);
    const extra: MountSpec = {
      hostPath: '/srv/docs',
      containerPath: '/workspace/extra/docs',
      readonly: true,
    };
    const plan = buildMountPlan(testGroup('family'), config, [extra]);
    expect(plan).toEqual([
      { hostPath: `${home}/groups/family`, containerPath: '/workspace/group', readonly: false },
      { hostPath: `${home}/groups/global`, containerPath: '/workspace/global', readonly: true },
      { hostPath: `${home}/data/ipc/family/from-agent`, containerPath: '/workspace/ipc', readonly: false },
      { hostPath: `${home}/data/ipc/family/to-agent`, containerPath: '/workspace/inbox', readonly: true },
      {
        hostPath: `${home}/data/sessions/family/.claude`,
        containerPath: '/home/node/.claude',
        readonly: false,
      },
      { hostPath: `${home}/data/proxy/family`, containerPath: '/run/nanoclaw', readonly: true },
      extra,
    ]);
    expect(fs.existsSync(home)).toBe(false); // deciding writes nothing
  });

  it('gives main the project read-only with .env, store/ and data/ hidden', () => {
    const home = path.join(tmp, 'plan-main');
    const plan = byContainerPath(buildMountPlan(testGroup('main', { isMain: true }), testConfig(home), []));
    expect(plan['/workspace/project']).toEqual({
      hostPath: home,
      containerPath: '/workspace/project',
      readonly: true,
    });
    expect(plan['/workspace/project/.env']).toMatchObject({
      mask: 'file',
      hostPath: '/dev/null',
      readonly: true,
    });
    expect(plan['/workspace/project/store']).toMatchObject({ mask: 'dir', hostPath: '/dev/null' });
    expect(plan['/workspace/project/data']).toMatchObject({ mask: 'dir', hostPath: '/dev/null' });
    expect(plan['/workspace/group']?.hostPath).toBe(`${home}/groups/main`);
    // testConfig keeps NANOCLAW_CONFIG_DIR inside the project, so it is hidden as well.
    expect(
      Object.keys(plan)
        .filter((p) => p.startsWith('/workspace/project/'))
        .sort(),
    ).toEqual([
      '/workspace/project/.env',
      '/workspace/project/config',
      '/workspace/project/data',
      '/workspace/project/store',
    ]);
  });

  it('also hides NANOCLAW_HOME state that lives inside the project under another name', () => {
    const project = path.join(tmp, 'plan-nested');
    const home = path.join(project, 'state');
    const config = testConfig(home, { projectRoot: project });
    const hidden = projectMasks(config)
      .map((m) => path.relative(project, m.hostPath))
      .sort();
    expect(hidden).toEqual([
      '.env',
      'data',
      'state/.env',
      'state/config',
      'state/data',
      'state/store',
      'store',
    ]);
  });

  it('hides only the project-level paths when NANOCLAW_HOME is elsewhere', () => {
    const config = testConfig(path.join(tmp, 'elsewhere'), { projectRoot: path.join(tmp, 'project') });
    expect(
      projectMasks(config)
        .map((m) => path.basename(m.hostPath))
        .sort(),
    ).toEqual(['.env', 'data', 'store']);
  });

  it('prepares the directories and hands the writable ones to the sandbox user', () => {
    const home = path.join(tmp, 'prepare');
    const config = testConfig(home);
    const group = testGroup('team');
    fs.mkdirSync(path.join(home, 'groups', 'team'), { recursive: true });
    fs.writeFileSync(path.join(home, 'groups', 'team', 'CLAUDE.md'), '# memory');
    // An agent planted links where the host writes: neither may be followed.
    fs.mkdirSync(path.join(home, 'data', 'ipc', 'team'), { recursive: true });
    const victim = path.join(tmp, 'victim');
    fs.mkdirSync(victim);
    // An older layout let the agent write data/ipc/<folder> itself: links may sit there too.
    fs.symlinkSync(victim, path.join(home, 'data', 'ipc', 'team', 'to-agent'));
    fs.mkdirSync(path.join(home, 'data', 'ipc', 'team', 'from-agent'));
    fs.symlinkSync(victim, path.join(home, 'data', 'ipc', 'team', 'from-agent', 'messages'));
    fs.symlinkSync(victim, path.join(home, 'groups', 'team', 'link'));

    prepareGroupDirs(group, config, { uid: 61000, gid: 61000 });

    const owner = (p: string) => fs.lstatSync(path.join(home, p)).uid;
    for (const dir of [
      'groups/team',
      'groups/team/CLAUDE.md',
      'groups/team/link',
      'data/ipc/team/from-agent',
      'data/ipc/team/from-agent/messages',
      'data/ipc/team/from-agent/tasks',
      'data/sessions/team/.claude',
    ])
      expect(owner(dir), dir).toBe(61000);
    for (const dir of [
      'groups/global',
      'data/proxy/team',
      'data/ipc/team',
      'data/ipc/team/to-agent',
      'data/ipc/team/to-agent/input',
      'data/ipc/team/to-agent/media',
    ])
      expect(owner(dir), dir).toBe(0);
    for (const dir of ['data/ipc/team/to-agent', 'data/ipc/team/from-agent/messages'])
      expect(fs.lstatSync(path.join(home, dir)).isDirectory(), dir).toBe(true);
    expect(fs.statSync(victim).uid).toBe(0);
    expect(fs.readdirSync(victim)).toEqual([]);
    expect(fs.existsSync(path.join(home, '.env'))).toBe(false); // masks are for main only
  });

  it('creates what main masks so each mask has something to sit on', () => {
    const home = path.join(tmp, 'prepare-main');
    const config = testConfig(home);
    prepareGroupDirs(testGroup('main', { isMain: true }), config, { uid: 1000, gid: 1000 });
    expect(fs.statSync(path.join(home, '.env')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(home, 'store')).isDirectory()).toBe(true);
    expect(fs.statSync(path.join(home, 'data')).isDirectory()).toBe(true);
  });
});
