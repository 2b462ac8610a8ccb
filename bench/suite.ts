import type { RuntimeKind } from '../src/config.js';
import { measureIdleRss } from './footprint.js';
import { measureIngest } from './ingest.js';
import { measureLatency, type LatencySamples } from './latency.js';
import type { Measure } from './report.js';
import { measureLatenessWhileIdle, measureSchedulerLateness } from './scheduler-lateness.js';

/** Runs per measure: at least 20 everywhere, as medians and p95s need. */
export const RUNS = {
  cold: 20,
  warm: 30,
  tasks: 40,
  idleTasks: 20,
  rss: 20,
  rssGroups: 100,
  ingest: 20,
  ingestMessages: 5000,
} as const;

const COLD_TARGET_MS: Record<RuntimeKind, number> = { docker: 1200, bwrap: 700, podman: 1200, apple: 1200 };

type Progress = (line: string) => void;

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

async function latencyMeasures(kind: RuntimeKind, progress: Progress): Promise<Measure[]> {
  let samples: LatencySamples = { cold: [], followUp: [], reply: [] };
  let error: string | undefined;
  try {
    samples = await measureLatency(kind, { cold: RUNS.cold, warm: RUNS.warm }, progress);
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
      target: { stat: 'p50', op: '<=', value: COLD_TARGET_MS[kind] },
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

/** Host-only measures first (quick, no sandbox), then the sandbox latencies per runtime. */
export async function runSuite(
  runtimes: RuntimeKind[],
  only: Set<string>,
  progress: Progress,
): Promise<Measure[]> {
  // "2" selects every runtime's measure 2; "2 bwrap" only bwrap's.
  const wanted = (id: string) => only.size === 0 || only.has(id) || only.has(id.split(' ')[0]!);
  const measures: Measure[] = [];
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
    () => measureSchedulerLateness(RUNS.tasks),
  );
  await take(
    {
      id: '5',
      what: `host RSS at idle, ${RUNS.rssGroups} registered groups`,
      unit: 'MB',
      target: { stat: 'p50', op: '<=', value: 100 },
    },
    () => measureIdleRss(RUNS.rssGroups, RUNS.rss),
  );
  await take(
    {
      id: '6',
      what: `ingest: stored and routed, no agent (${RUNS.ingestMessages} per run)`,
      unit: 'msg/s',
      target: { stat: 'p50', op: '>=', value: 5000 },
    },
    () => measureIngest(RUNS.ingest, RUNS.ingestMessages),
  );
  for (const kind of runtimes) {
    if (['1', '2', '3'].some((n) => wanted(`${n} ${kind}`))) {
      progress(`measuring 1-3 on ${kind}: ${RUNS.cold} cold starts, ${RUNS.warm} follow-ups`);
      measures.push(...(await latencyMeasures(kind, progress)).filter((m) => wanted(m.id)));
    }
    await take(
      {
        id: `4 ${kind}`,
        what: "scheduled task: sandbox start − due time, group's sandbox idle",
        unit: 'ms',
        target: { stat: 'max', op: '<=', value: 1000 },
      },
      () => measureLatenessWhileIdle(kind, RUNS.idleTasks),
    );
  }
  // By measure number; runtimes stay in the order asked for (the sort is stable).
  return measures.sort((a, b) => a.id.charCodeAt(0) - b.id.charCodeAt(0));
}
