import { hostIsRoot } from '../runtime.js';
import { DockerCompatibleRuntime, type DockerCompatibleOptions } from './docker-compatible.js';

export class PodmanRuntime extends DockerCompatibleRuntime {
  constructor(options: DockerCompatibleOptions = {}) {
    super(
      {
        kind: 'podman',
        bin: 'podman',
        installHint: 'Install Podman (apt-get install podman), or set CONTAINER_RUNTIME=bwrap',
        startHint: 'Check that `podman info` works for this user',
        extraRunArgs: () => [
          // Podman inherits the host's open-file limit, which some hosts cap too low for the SDK.
          '--ulimit',
          'nofile=4096:4096',
          '--ulimit',
          'nproc=4096:4096',
          // Rootless podman maps the host user to root inside; keep-id maps it to itself, so the
          // sandbox user (the host user) owns what it writes into the group folder.
          ...(hostIsRoot() ? [] : ['--userns', 'keep-id']),
        ],
      },
      options,
    );
  }
}
