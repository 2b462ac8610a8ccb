#!/usr/bin/env node
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from '../config.js';
import { help, parseCommand } from './args.js';

async function main(argv: string[]): Promise<number> {
  const { stdout: out, stderr: err } = process;
  const [first] = argv;
  if (first === '--version') {
    const pkg = fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    return (out.write(`${(JSON.parse(pkg) as { version: string }).version}\n`), 0);
  }
  if (!first || ['help', '--help', '-h'].includes(first))
    return ((first ? out : err).write(help()), first ? 0 : 2);
  if (first === 'audit')
    return (await import('./audit.js')).runAuditCommand(argv.slice(1), { config: loadConfig(), out, err });
  const p = parseCommand(argv, out, err);
  if (typeof p === 'number') return p;
  const config = loadConfig();
  const { values: v, command } = p;
  if (command !== 'start' && !v.verbose) (await import('../logger.js')).logger.level = 'silent';
  const deps = { config, out, err, json: !!v.json };
  const host = { home: config.home, port: config.localChannelPort };
  const { ChatError, runChat, runStop, runWhatsAppUnlink } = await import('./chat.js');
  try {
    switch (command.replace(/ .*/, '')) {
      case 'start':
        return (await import('./start.js')).runStart(config);
      case 'doctor':
        return (await import('./doctor.js')).runDoctor(deps);
      case 'build':
        return (await import('./build.js')).runBuild(!!v['if-missing'], deps);
      case 'groups':
        return (await import('./groups-command.js')).runGroupsCommand(argv.slice(1), deps);
      case 'tasks':
        return (await import('./tasks-command.js')).runTasksCommand(argv.slice(1), deps);
      case 'service':
        return (await import('./service.js')).runServiceCommand(command.slice(8), deps);
      case 'open': {
        const { readToken } = await import('../channels/local/token.js');
        const token = readToken(path.join(config.dataDir, 'local-channel.token'));
        if (!token) throw new ChatError('No local chat token yet: run `nanoclaw start` once.');
        return (out.write(`http://127.0.0.1:${config.localChannelPort}/?token=${token}\n`), 0);
      }
      case 'chat':
        return (await runChat({ ...host, chat: (v.chat as string) ?? 'local:main' }), 0);
      case 'stop':
        return (await runStop(host, p.positionals[0]!, out), 0);
      case 'whatsapp-unlink':
        return (await runWhatsAppUnlink(host, out), 0);
    }
    const pairingPhone = v['pairing-code'] as string | undefined;
    return (
      await (
        await import('./whatsapp-auth.js')
      ).runWhatsAppAuth({ authDir: config.authDir, pairingPhone, output: out }),
      0
    );
  } catch (e) {
    if (command !== 'whatsapp-auth' && !(e instanceof ChatError)) throw e;
    return (err.write(`${(e as Error).message}\n`), 1);
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(
      `${e instanceof ConfigError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exitCode = 1;
  },
);
