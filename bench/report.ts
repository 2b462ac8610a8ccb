import fs from 'node:fs';
import os from 'node:os';
import { summarize, type Summary } from './stats.js';

export type Stat = 'p50' | 'max';

export interface Target {
  stat: Stat;
  op: '<=' | '>=';
  value: number;
  /** The id of a floor measured in the same run: the target is then on stat − the floor's p50. */
  over?: string;
}

export interface Measure {
  id: string;
  what: string;
  unit: 'ms' | 'MB' | 'msg/s';
  /** None for a reference figure (a floor). */
  target?: Target;
  /** Raw samples, in the unit. */
  samples: number[];
  /** Set when the measure could not be taken (a runtime missing, a timeout...). */
  error?: string;
  /** A second figure taken alongside, shown under it (the floor's `true`). */
  sub?: { what: string; samples: number[] };
}

export interface MeasureResult extends Measure, Partial<Summary> {
  /** null: not measured, or its floor was not; undefined: no target. */
  met: boolean | null | undefined;
  /** p50 / the same-run floor's p50, for a sandbox measure (`N kind`). */
  floorRatio?: number;
  /** p50 − the floor's p50, for a measure whose target is over its floor. */
  overFloor?: number;
}

/** Each measure summarised and checked; a sandbox measure against the floor of its runtime, `0 kind`. */
export function evaluate(measures: Measure[]): MeasureResult[] {
  const p50s = new Map(
    measures.flatMap((m) => (m.error || !m.samples.length ? [] : [[m.id, summarize(m.samples).p50]])),
  );
  return measures.map((measure) => {
    if (measure.error || measure.samples.length === 0) return { ...measure, met: null };
    const summary = summarize(measure.samples);
    const [n, kind] = measure.id.split(' ');
    const floor = kind && n !== '0' ? p50s.get(`0 ${kind}`) : undefined;
    const floorRatio = floor && summary.p50 / floor;
    const { target } = measure;
    if (!target) return { ...measure, ...summary, floorRatio, met: undefined };
    const base = target.over ? p50s.get(target.over) : 0;
    if (base === undefined)
      return { ...measure, ...summary, met: null, error: `no floor (${target.over}) measured in this run` };
    const value = summary[target.stat] - base;
    const met = target.op === '<=' ? value <= target.value : value >= target.value;
    return { ...measure, ...summary, floorRatio, ...(target.over && { overFloor: value }), met };
  });
}

function format(value: number | undefined, unit: Measure['unit']): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  if (unit === 'msg/s') return Math.round(value).toLocaleString('en-US');
  if (unit === 'MB') return value.toFixed(1);
  return Math.abs(value) >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)}`;
}

function targetText({ target, unit }: Measure): string {
  if (!target) return '-';
  const { stat, op, value, over } = target;
  const shown = unit === 'msg/s' ? value.toLocaleString('en-US') : String(value);
  return `${stat}${over ? ' − floor' : ''} ${op === '<=' ? '≤' : '≥'} ${shown} ${unit}`;
}

/**
 * The one table: a row per measure, its order statistics, its target and whether it holds. A
 * sandbox measure also shows its p50 as a multiple of its runtime's floor, and over it if its
 * target is.
 */
export function renderTable(results: MeasureResult[]): string {
  const header = [
    '#',
    'measure',
    'unit',
    'runs',
    'min',
    'p50',
    'p95',
    'max',
    '× floor',
    'p50 − floor',
    'target',
    'met',
  ];
  const stats = (samples: number[], unit: Measure['unit']) => {
    const s = summarize(samples);
    return [String(s.runs), ...[s.min, s.p50, s.p95, s.max].map((v) => format(v, unit))];
  };
  const rows = results.flatMap((r) => [
    [
      r.id,
      r.what,
      r.unit,
      ...(r.runs ? stats(r.samples, r.unit) : ['0', '-', '-', '-', '-']),
      r.floorRatio === undefined ? '' : `${r.floorRatio.toFixed(2)}×`,
      r.overFloor === undefined ? '' : format(r.overFloor, r.unit),
      targetText(r),
      r.met === null ? `ERROR: ${r.error ?? 'no samples'}` : r.met === undefined ? '' : r.met ? 'yes' : 'NO',
    ],
    ...(r.sub && r.sub.samples.length > 0
      ? [['', `└ ${r.sub.what}`, r.unit, ...stats(r.sub.samples, r.unit), '', '', '-', '']]
      : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const numeric = new Set([3, 4, 5, 6, 7, 8, 9]);
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
  agentImage?: { name: string; sizeMB: number },
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
  const figures = (samples: number[]) => {
    const s = samples.length > 0 ? summarize(samples) : undefined;
    const [min, p50, p95, max] = [s?.min, s?.p50, s?.p95, s?.max].map(round);
    return { runs: samples.length, min, p50, p95, max };
  };
  const payload = {
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    machine,
    ...(agentImage && { agentImage: { ...agentImage, sizeMB: round(agentImage.sizeMB) } }),
    results: results.map((r) => ({
      id: r.id,
      what: r.what,
      unit: r.unit,
      ...figures(r.samples),
      ...(r.floorRatio !== undefined && { floorRatio: Math.round(r.floorRatio * 100) / 100 }),
      ...(r.overFloor !== undefined && { overFloor: round(r.overFloor) }),
      target: r.target, // none (and no met) for a floor
      met: r.met,
      ...(r.error ? { error: r.error } : {}),
      samples: r.samples.map((s) => round(s)),
      ...(r.sub && {
        sub: { what: r.sub.what, ...figures(r.sub.samples), samples: r.sub.samples.map(round) },
      }),
    })),
  };
  fs.writeFileSync(file, `${JSON.stringify(payload, null, 2)}\n`);
}
