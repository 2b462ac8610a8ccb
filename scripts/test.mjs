// `npm test`: the whole suite on a prepared machine — lint, types, unit, and end-to-end tests
// through real sandboxes (docker, podman and bwrap) with the real Claude Agent SDK against a mock model.
import {
  ensureHostBuild,
  ensureImage,
  ensurePackages,
  ensurePodmanImage,
  ensureRunnerBuild,
  run,
} from './prepare.mjs';

ensurePackages();
ensureHostBuild();
ensureRunnerBuild();
ensureImage();
ensurePodmanImage();
run('npx', ['tsc', '--noEmit', '-p', 'tsconfig.json']);
run('npx', ['eslint', '.']);
run('npx', ['prettier', '--check', '.']);
run('npx', ['vitest', 'run', ...process.argv.slice(2)]);
