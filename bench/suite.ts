import type { RuntimeKind } from '../src/config.js';
import { measureFloor, type FloorSamples } from './floor.js';
import { measureIdleRss } from './footprint.js';
import { measureIngest } from './ingest.js';
import { measureLatency, type LatencySamples } from './latency.js';
import type { Measure } from './report.js';
import { measureLatenessWhileIdle, measureSchedulerLateness } from './scheduler-lateness.js';
import { measureWarmAhead, type WarmSamples } from './warm-ahead.js';

/** Runs per measure: at least 20 everywhere, as medians and p95s need; `--runs N` caps them for a quick look. */
const RUNS = {
  floor: 20,
  cold: 20,
  warm: 30,
  tasks: 40,
  idleTasks: 20,
  rss: 20,
  ingest: 20,
  typing: 20,
  warmTasks: 20,
};
type Runs = typeof RUNS;
const RSS_GROUPS = 100;
const INGEST_MESSAGES = 5000;
/** What a cold start may add to the bare SDK start in the same sandbox (the floor, `0 kind`). */
const COLD_OVER_FLOOR_MS = 250;

type Progress = (line: string) => void;

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

async function floorMeasure(kind: RuntimeKind, runs: number): Promise<[Measure, FloorSamples['image']?]> {
  const measure = {
    id: `0 ${kind}`,
    what: 'floor: spawn → first model request, bare SDK query("hi"), no host',
    unit: 'ms' as const,
  };
  try {
    const { query, trueExit, image } = await measureFloor(kind, runs);
    const sub = { what: 'spawn → exit of `true`, same sandbox', samples: trueExit };
    return [{ ...measure, samples: query, sub }, image];
  } catch (err) {
    return [{ ...measure, samples: [], error: errorText(err) }];
  }
}

async function latencyMeasures(kind: RuntimeKind, runs: Runs, progress: Progress): Promise<Measure[]> {
  let samples: LatencySamples = { cold: [], followUp: [], reply: [] };
  let error: string | undefined;
  try {
    samples = await measureLatency(kind, { cold: runs.cold, warm: runs.warm }, progress);
  } catch (err) {
    error = errorText(err);
  }
  const base = { unit: 'ms' as const, ...(error ? { error } : {}) };
  return [
    {
      ...base,
      id: `1 ${kind}`,
      what: 'follow-up: accepted → model request, running sandbox',
      target: { stat: 'p50', op: '<=', value: 50 },
      samples: samples.followUp,
    },
    {
      ...base,
      id: `2 ${kind}`,
      what: 'cold: accepted → first model request, new sandbox',
      target: { stat: 'p50', op: '<=', value: COLD_OVER_FLOOR_MS, over: `0 ${kind}` },
      samples: samples.cold,
    },
    {
      ...base,
      id: `3 ${kind}`,
      what: 'accepted → reply delivered, warm sandbox, instant model',
      target: { stat: 'p50', op: '<=', value: 300 },
      samples: samples.reply,
    },
  ];
}

async function warmMeasures(kind: RuntimeKind, runs: Runs, progress: Progress): Promise<Measure[]> {
  let samples: WarmSamples = { typing: [], task: [], rss: [] };
  let error: string | undefined;
  try {
    samples = await measureWarmAhead(kind, { typing: runs.typing, tasks: runs.warmTasks }, progress);
  } catch (err) {
    error = errorText(err);
  }
  const base = error ? { error } : {};
  return [
    {
      ...base,
      id: `7 ${kind}`,
      what: 'warm-ahead: typing, message 2 s later: accepted → first model request',
      unit: 'ms',
      target: { stat: 'p50', op: '<=', value: 150 },
      samples: samples.typing,
    },
    {
      ...base,
      id: `8 ${kind}`,
      what: 'warm-ahead: once task, due time → first model request (never before due)',
      unit: 'ms',
      target: { stat: 'p50', op: '<=', value: 150 },
      samples: samples.task,
    },
    {
      ...base,
      id: `8 ${kind} max`,
      what: 'warm-ahead: once task, the same, worst run',
      unit: 'ms',
      target: { stat: 'max', op: '<=', value: 400 },
      samples: samples.task,
    },
    {
      ...base,
      id: `9 ${kind}`,
      what: 'RSS of one warm sandbox waiting for its message, all its processes',
      unit: 'MB',
      samples: samples.rss,
    },
  ];
}

/** Host-only measures first (quick, no sandbox), then per runtime its floor and sandbox latencies. */
export async function runSuite(
  runtimes: RuntimeKind[],
  only: Set<string>,
  progress: Progress,
  maxRuns = Infinity,
): Promise<{ measures: Measure[]; agentImage?: FloorSamples['image'] }> {
  const runs = Object.fromEntries(
    Object.entries(RUNS).map(([key, n]) => [key, Math.min(n, maxRuns)]),
  ) as Runs;
  // "2" selects every runtime's measure 2; "2 bwrap" only bwrap's.
  const wanted = (id: string) => only.size === 0 || only.has(id) || only.has(id.split(' ')[0]!);
  const measures: Measure[] = [];
  let agentImage: FloorSamples['image'];
  const take = async (measure: Omit<Measure, 'samples'>, sample: () => Promise<number[]>) => {
    if (!wanted(measure.id)) return;
    progress(`measuring ${measure.id}: ${measure.what}`);
    try {
      measures.push({ ...measure, samples: await sample() });
    } catch (err) {
      measures.push({ ...measure, samples: [], error: errorText(err) });
    }
  };

  await take(
    {
      id: '4',
      what: 'scheduled task: run start − due time, group free',
      unit: 'ms',
      target: { stat: 'max', op: '<=', value: 1000 },
    },
    () => measureSchedulerLateness(runs.tasks),
  );
  await take(
    {
      id: '5',
      what: `host RSS at idle, ${RSS_GROUPS} registered groups`,
      unit: 'MB',
      target: { stat: 'p50', op: '<=', value: 100 },
    },
    () => measureIdleRss(RSS_GROUPS, runs.rss),
  );
  await take(
    {
      id: '6',
      what: `ingest: stored and routed, no agent (${INGEST_MESSAGES} per run)`,
      unit: 'msg/s',
      target: { stat: 'p50', op: '>=', value: 5000 },
    },
    () => measureIngest(runs.ingest, INGEST_MESSAGES),
  );
  for (const kind of runtimes) {
    // The cold target is over the floor, so a cold measure brings its floor along.
    if (wanted(`0 ${kind}`) || wanted(`2 ${kind}`)) {
      progress(`measuring 0 ${kind}: ${runs.floor} bare SDK starts, ${runs.floor} \`true\``);
      const [floor, image] = await floorMeasure(kind, runs.floor);
      measures.push(floor);
      agentImage ??= image;
    }
    if (['1', '2', '3'].some((n) => wanted(`${n} ${kind}`))) {
      progress(`measuring 1-3 on ${kind}: ${runs.cold} cold starts, ${runs.warm} follow-ups`);
      measures.push(...(await latencyMeasures(kind, runs, progress)).filter((m) => wanted(m.id)));
    }
    await take(
      {
        id: `4 ${kind}`,
        what: "scheduled task: sandbox start − due time, group's sandbox idle",
        unit: 'ms',
        target: { stat: 'max', op: '<=', value: 1000 },
      },
      () => measureLatenessWhileIdle(kind, runs.idleTasks),
    );
    if (['7', '8', '9'].some((n) => wanted(`${n} ${kind}`)))
      measures.push(
        ...(await warmMeasures(kind, runs, progress)).filter((m) => wanted(m.id.split(' max')[0]!)),
      );
  }
  // By measure number; runtimes stay in the order asked for (the sort is stable).
  measures.sort((a, b) => a.id.charCodeAt(0) - b.id.charCodeAt(0));
  return { measures, agentImage };
}
