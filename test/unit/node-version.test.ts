import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// `npm start` and `npm test` run these scripts; on a Node older than 22 they must stop before
// installing or building anything, and say how to get a current Node.
const pretend = (version: string) =>
  `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${version}"})`;

describe.each(['scripts/run.mjs', 'scripts/test.mjs'])('%s on an old Node', (script) => {
  it('stops at once with a message that names the fix', () => {
    const done = spawnSync(process.execPath, ['--import', pretend('20.19.0'), script], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(done.status).toBe(1);
    expect(done.stderr).toContain('needs Node.js 22 or newer');
    expect(done.stderr).toContain('this is Node 20.19.0');
    expect(done.stderr).toContain('nvm install 24');
    expect(done.stderr).not.toContain('> npm'); // nothing was installed or built
  });
});
