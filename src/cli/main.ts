#!/usr/bin/env node
import path from 'node:path';
import { ConfigError, loadConfig } from '../config.js';
import { openStore } from '../db/store.js';

const USAGE = `nanoclaw — a personal assistant in your chats, each agent in its own sandbox

usage: nanoclaw <command> [options]

  start                     run the assistant (same as npm start, without the build steps)
  doctor                    check runtime, image, credentials, channels, allowlist, disk
  build [--if-missing]      build the agent image (docker/podman) or agent-runner (bwrap)
  whatsapp-auth [--pairing-code <phone>]
                            link WhatsApp: QR code in the terminal, or a pairing code
  groups list               registered groups and known chats
  groups register --jid <id> --name <name> --folder <folder> [--trigger @Name] [--no-trigger-required] [--main]
  tasks list|pause|resume|cancel <id>
                            scheduled tasks
  chat [--chat local:main]  talk to a group from the terminal through the local channel
  open                      print the local chat link with its access token
  service install|uninstall|status
                            run in the background at login (systemd user unit / launchd agent)
  audit [--group <folder>] [--runtime <kind>] [--json]
                            attack a real sandbox from inside; a verdict per threat row
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const config = loadConfig();
  const out = process.stdout;
  switch (command) {
    case 'start': {
      const { runStart } = await import('./start.js');
      return runStart(config);
    }
    case 'doctor': {
      const { runDoctor } = await import('./doctor.js');
      return runDoctor({ config, out });
    }
    case 'build': {
      const { runBuild } = await import('./build.js');
      return runBuild(args, { config, out });
    }
    case 'whatsapp-auth': {
      const { runWhatsAppAuth } = await import('./whatsapp-auth.js');
      const i = args.indexOf('--pairing-code');
      const phone = i >= 0 ? args[i + 1] : undefined;
      if (i >= 0 && !phone) {
        process.stderr.write('--pairing-code needs the phone number, e.g. --pairing-code 4915112345678\n');
        return 2;
      }
      try {
        const { jid } = await runWhatsAppAuth({
          authDir: config.authDir,
          ...(phone ? { pairingPhone: phone } : {}),
          output: out,
        });
        out.write(
          `Linked as ${jid}. To use your self-chat as main: nanoclaw groups register --jid ${jid} --name Me --folder self --main\n`,
        );
      } catch (err) {
        process.stderr.write(`${(err as Error).message}\n`);
        return 1;
      }
      return 0;
    }
    case 'groups': {
      const { runGroupsCommand } = await import('./groups-command.js');
      const store = openStore(config.dbPath);
      try {
        return runGroupsCommand(args, { store, config, out });
      } finally {
        store.close();
      }
    }
    case 'tasks': {
      const { runTasksCommand } = await import('./tasks-command.js');
      const store = openStore(config.dbPath);
      try {
        return runTasksCommand(args, { store, config, out, err: process.stderr });
      } finally {
        store.close();
      }
    }
    case 'chat': {
      const { runChat, ChatError } = await import('./chat.js');
      const i = args.indexOf('--chat');
      const chat = i >= 0 ? args[i + 1] : 'local:main';
      if (!chat) {
        process.stderr.write('--chat needs a chat id, e.g. --chat local:main\n');
        return 2;
      }
      try {
        await runChat({ home: config.home, port: config.localChannelPort, chat });
      } catch (err) {
        if (!(err instanceof ChatError)) throw err;
        process.stderr.write(`${err.message}\n`);
        return 1;
      }
      return 0;
    }
    case 'open': {
      const { readToken } = await import('../channels/local/token.js');
      const token = readToken(path.join(config.dataDir, 'local-channel.token'));
      if (!token) {
        process.stderr.write('No local chat token yet: start the assistant once (npm start).\n');
        return 1;
      }
      out.write(`http://127.0.0.1:${config.localChannelPort}/?token=${token}\n`);
      return 0;
    }
    case 'audit': {
      const { runAuditCommand } = await import('./audit.js');
      return runAuditCommand(args, { config, out, err: process.stderr });
    }
    case 'service': {
      const { runServiceCommand } = await import('./service.js');
      return runServiceCommand(args, { config, out });
    }
    default:
      process.stderr.write(`unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
