import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { buildRuntime, createRuntime, detectionOrder } from '../../src/sandbox/detect.js';
import { RuntimeUnavailableError } from '../../src/sandbox/runtime.js';
import { makeTempDir, testConfig } from '../unit/sandbox-helpers.js';

describe('runtime detection (real binaries on this machine)', () => {
  const config = testConfig(makeTempDir());
  afterAll(() => fs.rmSync(config.home, { recursive: true, force: true }));

  it('tries docker, podman, bwrap on Linux and apple, docker on macOS', () => {
    expect(detectionOrder('linux')).toEqual(['docker', 'podman', 'bwrap']);
    expect(detectionOrder('darwin')).toEqual(['apple', 'docker']);
  });

  it('picks the first usable runtime when none is configured', async () => {
    const runtime = await createRuntime(config, 'linux');
    expect(runtime.kind).toBe('docker'); // the daemon runs here; it must be found first
  });

  it('uses the configured runtime as is', async () => {
    expect((await createRuntime({ ...config, containerRuntime: 'bwrap' })).kind).toBe('bwrap');
    expect((await createRuntime({ ...config, containerRuntime: 'podman' })).kind).toBe('podman');
  });

  it('names what to install when a runtime is missing', async () => {
    // Apple's `container` CLI is never on a Linux machine; podman may be, so it is hidden from PATH.
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await expect(buildRuntime('podman', config).ensureRunning()).rejects.toThrow(RuntimeUnavailableError);
      await expect(buildRuntime('podman', config).ensureRunning()).rejects.toThrow(/apt-get install podman/);
    } finally {
      process.env.PATH = path;
    }
    await expect(buildRuntime('apple', config).ensureRunning()).rejects.toThrow(
      /not installed.*Docker Desktop/,
    );
  });

  it('fails with install advice when no runtime in the detection order is usable', async () => {
    // macOS order on Linux: no `container` CLI; docker is skipped by pointing it at a dead socket.
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = 'unix:///nonexistent/docker.sock';
    try {
      const error = await createRuntime(config, 'darwin').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RuntimeUnavailableError);
      expect(String(error)).toMatch(/apple: .*not installed/);
      expect(String(error)).toMatch(/docker: docker is not running/);
      expect(String(error)).toMatch(/Install Apple container .* or Docker Desktop/);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
});
