import { DockerCompatibleRuntime, type DockerCompatibleOptions } from './docker-compatible.js';

export class DockerRuntime extends DockerCompatibleRuntime {
  constructor(options: DockerCompatibleOptions = {}) {
    super(
      {
        kind: 'docker',
        bin: 'docker',
        installHint:
          'Install Docker (Debian/Ubuntu: apt-get install docker.io; macOS: Docker Desktop), or set CONTAINER_RUNTIME=bwrap',
        startHint: 'Start the Docker daemon (systemctl start docker) and check you may use it',
        extraRunArgs: () => [],
      },
      options,
    );
  }
}
