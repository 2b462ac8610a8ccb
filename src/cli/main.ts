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
  if (!first || ['help', '--help', '-h'].includes(first)) {
    (first ? out : err).write(
      `nanoclaw: a personal assistant in your chats, each agent in its own sandbox\n\n${help()}`,
    );
    return first ? 0 : 2;
  }
  if (first === 'audit')
    return (await import('./audit.js')).runAuditCommand(argv.slice(1), { config: loadConfig(), out, err });
  const p = parseCommand(argv, out, err);
  if (typeof p === 'number') return p;
  const config = loadConfig();
  const { values: v, command } = p;
  if (command !== 'start' && !v.verbose) (await import('../logger.js')).logger.level = 'silent';
  const [family = '', sub] = command.split(' ');
  switch (family) {
    case 'start':
      return (await import('./start.js')).runStart(config);
    case 'doctor':
      return (await import('./doctor.js')).runDoctor({ config, out, json: !!v.json });
    case 'build':
      return (await import('./build.js')).runBuild(!!v['if-missing'], { config, out, err });
    case 'groups':
      return (await import('./groups-command.js')).runGroupsCommand(argv.slice(1), { config, out, err });
    case 'tasks':
      return (await import('./tasks-command.js')).runTasksCommand(argv.slice(1), { config, out, err });
    case 'service':
      return (await import('./service.js')).runServiceCommand(sub!, { config, out, json: !!v.json });
    case 'open': {
      const { readToken } = await import('../channels/local/token.js');
      const token = readToken(path.join(config.dataDir, 'local-channel.token'));
      if (token) return (out.write(`http://127.0.0.1:${config.localChannelPort}/?token=${token}\n`), 0);
      return (err.write('No local chat token yet: start the assistant once (npm start).\n'), 1);
    }
  }
  const host = { home: config.home, port: config.localChannelPort };
  const { ChatError, runChat, runStop } = await import('./chat.js');
  try {
    if (family === 'chat') await runChat({ ...host, chat: v.chat as string });
    else if (family === 'stop') await runStop(host, p.positionals[0]!, out);
    else if (family === 'whatsapp-unlink') {
      const { runWhatsAppUnlink } = await import('./whatsapp-auth.js');
      await runWhatsAppUnlink({ ...host, authDir: config.authDir, output: out });
    } else {
      const { runWhatsAppAuth } = await import('./whatsapp-auth.js');
      const pairingPhone = v['pairing-code'] as string | undefined;
      const { jid } = await runWhatsAppAuth({ authDir: config.authDir, pairingPhone, output: out });
      out.write(
        `Linked as ${jid}. To use your self-chat as main: nanoclaw groups register --jid ${jid} --name Me --folder self --main\n`,
      );
    }
    return 0;
  } catch (e) {
    if (family !== 'whatsapp-auth' && !(e instanceof ChatError)) throw e;
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
