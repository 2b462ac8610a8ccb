// `npm run bench`: latency, footprint and throughput of the real host, sandboxes and Agent SDK,
// offline, against the scripted mock model. Prints one table; writes bench/results.json.
//
//   npm run bench                          everything (docker and bwrap), a few minutes
//   npm run bench -- --only 5,6            some measures (ids as in the table: 0-9, or "2 bwrap")
//   npm run bench -- --runtimes bwrap      sandbox measures on some runtimes only
//   npm run bench -- --runs 3              at most 3 runs per measure (a quick look, not a result)
//   npm run bench -- --no-build            measure what is built, stale or not
import os from 'node:os';
import path from 'node:path';

// Before any host module loads: the logger reads its level at import, and logs would bury the table.
process.env.LOG_LEVEL ??= 'error';

const { prepareBuilds } = await import('./prepare.js');
const { evaluate, renderTable, writeResults } = await import('./report.js');
const { runSuite } = await import('./suite.js');
const { RUNTIME_KINDS } = await import('../src/config.js');
type RuntimeKind = (typeof RUNTIME_KINDS)[number];

function option(name: string): string | undefined {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  if (i !== -1) return args[i + 1];
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

const list = (value: string | undefined) =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

async function main(): Promise<number> {
  const startedAt = new Date();
  const loadStart = os.loadavg();
  const runtimes = list(option('runtimes') ?? 'docker,bwrap');
  const unknown = runtimes.filter((r) => !(RUNTIME_KINDS as readonly string[]).includes(r));
  if (unknown.length > 0) {
    process.stderr.write(`unknown runtime(s): ${unknown.join(', ')}\n`);
    return 2;
  }
  const only = new Set(list(option('only')));
  const maxRuns = Math.floor(Number(option('runs') ?? Infinity));
  if (!(maxRuns >= 1)) {
    process.stderr.write(`--runs wants a number of runs, not ${option('runs')}\n`);
    return 2;
  }
  const progress = (line: string) => process.stderr.write(`[bench] ${line}\n`);

  const sandboxed = only.size === 0 || [...only].some((id) => /^[0-47-9]/.test(id));
  if (!process.argv.includes('--no-build')) {
    progress('building what is stale (host, agent-runner, agent image)');
    prepareBuilds(sandboxed ? runtimes : []);
  }
  const { measures, agentImage } = await runSuite(runtimes as RuntimeKind[], only, progress, maxRuns);
  const results = evaluate(measures);
  const file = path.join(import.meta.dirname, 'results.json');
  writeResults(file, results, startedAt, loadStart, agentImage);
  process.stdout.write(`${renderTable(results)}\n`);
  if (agentImage)
    process.stdout.write(`\nagent image ${agentImage.name}: ${agentImage.sizeMB.toFixed(0)} MB\n`);
  const seconds = Math.round((Date.now() - startedAt.getTime()) / 1000);
  process.stdout.write(
    `\n${seconds} s; load average ${loadStart.map((l) => l.toFixed(2)).join(' ')} at start. Details: ${path.relative(process.cwd(), file)}\n`,
  );
  return results.some((r) => r.met === null) ? 1 : 0;
}

process.exitCode = await main();
