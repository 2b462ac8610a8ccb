#!/usr/bin/env node
import { ConfigError, loadConfig } from '../config.js';
import { RuntimeUnavailableError } from '../sandbox/runtime.js';
import { parseCommand } from './args.js';

async function main(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  const p = parseCommand(argv, out, err);
  if (typeof p === 'number') return p;
  const config = loadConfig();
  const { values: v, command } = p;
  if (command !== 'start' && !v.verbose) (await import('../logger.js')).logger.level = 'silent';
  const deps = { config, out, err, json: !!v.json };
  const host = { home: config.home, port: config.localChannelPort };
  const chat = await import('./chat.js');
  try {
    switch (argv[0]!) {
      case 'audit':
        return (await import('./audit.js')).runAuditCommand(argv.slice(1), deps);
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
      case 'open':
        return (out.write(`http://127.0.0.1:${host.port}/?token=${chat.hostToken(host.home)}\n`), 0);
      case 'chat':
        return (await chat.runChat({ ...host, chat: v.chat ?? 'local:main' }), 0);
      case 'stop':
        return (await chat.runStop(host, p.positionals[0]!, out), 0);
      case 'whatsapp-unlink':
        return (await chat.runWhatsAppUnlink(host, out), 0);
    }
    const { runWhatsAppAuth } = await import('./whatsapp-auth.js');
    return (await runWhatsAppAuth(config.authDir, v['pairing-code'], out), 0);
  } catch (e) {
    if (!(e instanceof chat.ChatError || e instanceof RuntimeUnavailableError || command === 'whatsapp-auth'))
      throw e;
    return (err.write(`${(e as Error).message}\n`), 1);
  }
}

process.exitCode = await main(process.argv.slice(2)).catch(
  (e: Error) => (process.stderr.write(`${e instanceof ConfigError ? e.message : e.stack}\n`), 1),
);
