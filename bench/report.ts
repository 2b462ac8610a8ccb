import fs from 'node:fs';
import os from 'node:os';
import { summarize, type Summary } from './stats.js';

export type Stat = 'p50' | 'max';

export interface Target {
  stat: Stat;
  op: '<=' | '>=';
  value: number;
}

export interface Measure {
  id: string;
  what: string;
  unit: 'ms' | 'MB' | 'msg/s';
  target: Target;
  /** Raw samples, in the unit. */
  samples: number[];
  /** Set when the measure could not be taken (a runtime missing, a timeout...). */
  error?: string;
}

export interface MeasureResult extends Measure, Partial<Summary> {
  met: boolean | null;
}

export function evaluate(measure: Measure): MeasureResult {
  if (measure.error || measure.samples.length === 0) return { ...measure, met: null };
  const summary = summarize(measure.samples);
  const value = summary[measure.target.stat];
  const met = measure.target.op === '<=' ? value <= measure.target.value : value >= measure.target.value;
  return { ...measure, ...summary, met };
}

function format(value: number | undefined, unit: Measure['unit']): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  if (unit === 'msg/s') return Math.round(value).toLocaleString('en-US');
  if (unit === 'MB') return value.toFixed(1);
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)}`;
}

function targetText(measure: Measure): string {
  const { stat, op, value } = measure.target;
  const shown = measure.unit === 'msg/s' ? value.toLocaleString('en-US') : String(value);
  return `${stat} ${op === '<=' ? '≤' : '≥'} ${shown} ${measure.unit}`;
}

/** The one table: a row per measure, its order statistics, its target and whether it holds. */
export function renderTable(results: MeasureResult[]): string {
  const header = ['#', 'measure', 'unit', 'runs', 'min', 'p50', 'p95', 'max', 'target', 'met'];
  const rows = results.map((r) => [
    r.id,
    r.what,
    r.unit,
    String(r.runs ?? 0),
    format(r.min, r.unit),
    format(r.p50, r.unit),
    format(r.p95, r.unit),
    format(r.max, r.unit),
    targetText(r),
    r.met === null ? `ERROR: ${r.error ?? 'no samples'}` : r.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const numeric = new Set([3, 4, 5, 6, 7]);
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** bench/results.json: the table's numbers, the raw samples, and the machine they came from. */
export function writeResults(
  file: string,
  results: MeasureResult[],
  startedAt: Date,
  loadStart: number[],
): void {
  const machine = {
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGB: Math.round(os.totalmem() / 1e9),
    // The machine may be shared: the load average says how much the figures were disturbed.
    loadAverageAtStart: loadStart,
    loadAverageAtEnd: os.loadavg(),
  };
  const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * 10) / 10);
  const payload = {
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    machine,
    results: results.map((r) => ({
      id: r.id,
      what: r.what,
      unit: r.unit,
      runs: r.runs ?? 0,
      min: round(r.min),
      p50: round(r.p50),
      p95: round(r.p95),
      max: round(r.max),
      target: r.target,
      met: r.met,
      ...(r.error ? { error: r.error } : {}),
      samples: r.samples.map((s) => round(s)),
    })),
  };
  fs.writeFileSync(file, `${JSON.stringify(payload, null, 2)}\n`);
}
