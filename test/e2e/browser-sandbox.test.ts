import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BwrapRuntime } from '../../src/sandbox/runtimes/bwrap.js';
import { DockerRuntime } from '../../src/sandbox/runtimes/docker.js';
import type { SandboxRuntime } from '../../src/sandbox/runtime.js';
import { testGroup } from '../unit/sandbox-helpers.js';
import { collect, makeStateHome, specFor } from './runtime-helpers.js';

// The browser skill's own command-line snippet, run as the agent would run it, against a page that
// needs JavaScript: proves the image's Chromium (the headless shell) and the host's (bwrap) work
// inside a real sandbox with no network.
const skill = fs.readFileSync(path.resolve('container/skills/browser/SKILL.md'), 'utf8');
const snippet = /```bash\n(CHROME=[\s\S]*?)```/.exec(skill)?.[1];
const page = 'data:text/html,<p id=x>waiting</p><script>x.textContent = "rendered " + 6 * 7</script>';

const runtimes: [string, () => SandboxRuntime, string][] = [
  ['docker', () => new DockerRuntime({ stopGraceSeconds: 1 }), 'nanoclaw-agent:latest'],
  [
    'bwrap',
    () => new BwrapRuntime({ agentRunnerDir: path.resolve('container/agent-runner'), stopGraceMs: 1000 }),
    'host',
  ],
];

describe.each(runtimes)('the browser skill inside a %s sandbox', (_kind, makeRuntime, image) => {
  const config = makeStateHome();
  afterAll(() => fs.rmSync(config.home, { recursive: true, force: true }));

  it('renders a page with scripts, takes a screenshot and prints a PDF', async () => {
    expect(snippet, 'the SKILL.md command-line snippet').toBeTruthy();
    const script = `set -e\ncd /tmp\n${snippet!.replaceAll('https://example.com', '$PAGE')}\ncat /tmp/page.html`;
    const spec = specFor(config, testGroup('main', { isMain: true }), image, ['bash', '-c', script]);
    spec.env = { ...spec.env, HTTPS_PROXY: 'http://127.0.0.1:9', PAGE: page };
    const done = await collect(makeRuntime().spawn(spec));
    expect(done.code, done.stderr.slice(-2000)).toBe(0);
    expect(done.stdout).toContain('<p id="x">rendered 42</p>');
    const group = path.join(config.groupsDir, 'main');
    expect(fs.readFileSync(path.join(group, 'shot.png')).subarray(1, 4).toString()).toBe('PNG');
    expect(fs.readFileSync(path.join(group, 'page.pdf')).subarray(0, 5).toString()).toBe('%PDF-');
  }, 120_000);
});
