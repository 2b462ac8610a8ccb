// `npm start`: install what is missing, build what is stale, then run the assistant.
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ensureHostBuild, ensureImage, ensurePackages, ensureRunnerBuild, root } from './prepare.mjs';

ensurePackages();
ensureHostBuild();
ensureRunnerBuild();
ensureImage();

const { HOST_NODE_FLAGS } = await import('../dist/cli/service.js');
const child = spawn(
  process.execPath,
  [...HOST_NODE_FLAGS, path.join(root, 'dist', 'cli', 'main.js'), 'start', ...process.argv.slice(2)],
  {
    stdio: 'inherit',
  },
);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
