import { runHostActionsChild, type ChildMessage, type HostActionsInput } from './host-actions.js';

/**
 * Entry of the child process that runs the host's actions for `nanoclaw audit` (see
 * host-actions.ts). Its one input comes from the parent audit process over the IPC channel.
 */
const send = (message: ChildMessage) =>
  new Promise<void>((resolve) => {
    if (process.send) process.send(message, undefined, undefined, () => resolve());
    else resolve();
  });

process.once('message', (input) => {
  runHostActionsChild(input as HostActionsInput, send).then(
    () => process.disconnect?.(),
    (err: unknown) => {
      process.stderr.write(`audit host actions failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
});
