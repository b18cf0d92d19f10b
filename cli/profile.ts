// `--profile` on train and generate: the run is recorded by the engine's profiler
// (engine/profile.ts); at the end a table says where the time went (per step, per op, per
// kernel: time, calls, dispatches, bytes) and the Chrome trace goes to `<out-dir>/trace.json`
// (open it in https://ui.perfetto.dev). Meant for short runs: every launch is kept until the end.

import { type ProfileReport, startProfile, type StepStat, stopProfile } from "../engine/profile.ts";
import { describeDevice } from "../engine/device.ts";
import { joinPath } from "./files.ts";

/** The trace file's name in the run directory. */
export const TRACE_FILE = "trace.json";

/** A recording under way: `finish` prints the table and writes the trace. */
export interface CliProfile {
  /** Stop recording; print the table through `print`, write the trace into `outDir`. */
  finish(outDir: string, print: (line: string) => void): Promise<void>;
}

/**
 * Start recording when `on` (else null). A run that throws leaves it recording: the command
 * ends with the error.
 */
export function startCliProfile(on: boolean): CliProfile | null {
  if (!on) return null;
  startProfile();
  return {
    async finish(outDir, print) {
      const report = await stopProfile();
      for (const line of formatProfile(report, describeDevice())) print(line);
      print(await writeTrace(report, outDir));
    },
  };
}

/** Write the trace into `dir`; the line to print (where it went, or why it was not written). */
export async function writeTrace(report: ProfileReport, dir: string): Promise<string> {
  const path = joinPath(dir, TRACE_FILE);
  let state = (await Deno.permissions.query({ name: "write", path })).state;
  if (state === "prompt" && Deno.stdin.isTerminal()) {
    state = (await Deno.permissions.request({ name: "write", path })).state;
  }
  if (state !== "granted") {
    return `profile: ${TRACE_FILE} not written: no write permission for '${path}' (generate ` +
      `runs with --allow-read only; add --allow-write=${dir} to get the trace)`;
  }
  await Deno.writeTextFile(path, JSON.stringify(report.trace));
  const n = report.trace.traceEvents.length.toLocaleString("en");
  return `profile: trace ${path} (${n} events${report.truncated ? ", truncated" : ""}; open ` +
    `it in https://ui.perfetto.dev)`;
}

const ms = (v: number) => v.toFixed(1);
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

/** Right-aligned columns (the first left-aligned) under a header. */
function table(header: string[], rows: string[][]): string[] {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    "  " + r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
  return [line(header), ...rows.map(line)];
}

/** The median of each field over `steps` (all numbers). */
function medianStep(steps: StepStat[]): StepStat {
  const med = (f: (s: StepStat) => number) => {
    const v = steps.map(f).sort((a, b) => a - b);
    const h = v.length >> 1;
    return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
  };
  const dev = steps.every((s) => s.deviceMs !== null) ? med((s) => s.deviceMs!) : null;
  return {
    label: steps[0].label,
    index: -1,
    wallMs: med((s) => s.wallMs),
    deviceMs: dev,
    launches: med((s) => s.launches),
    dispatches: med((s) => s.dispatches),
    submits: med((s) => s.submits),
    syncs: med((s) => s.syncs),
    syncMs: med((s) => s.syncMs),
    bytes: med((s) => s.bytes),
  };
}

function stepLine(what: string, s: StepStat): string {
  return `  ${what}: ${ms(s.wallMs)} ms` +
    (s.deviceMs !== null ? ` (GPU ${ms(s.deviceMs)} ms)` : "") +
    `, ${s.launches} launches, ${s.dispatches} dispatches, ${s.submits} submits, ` +
    `${s.syncs} syncs (${ms(s.syncMs)} ms waiting), ${mb(s.bytes)} MB moved`;
}

/** The profile as printable lines: per step, then the top `top` ops and kernels. */
export function formatProfile(r: ProfileReport, device: string, top = 15): string[] {
  const gpu = r.clock === "gpu-timestamp";
  const timeOf = (s: { hostMs: number; deviceMs: number | null }) => s.deviceMs ?? s.hostMs;
  const share = (rows: { hostMs: number; deviceMs: number | null }[]) => {
    const total = rows.reduce((a, k) => a + timeOf(k), 0) || 1;
    return (v: number) => `${((100 * v) / total).toFixed(1)}%`;
  };
  const [opPct, kernelPct] = [share(r.ops), share(r.kernels)];
  const out = [
    `profile: ${ms(r.wallMs)} ms recorded on ${device}`,
    gpu
      ? "  kernel times: GPU timestamps of each dispatch (one compute pass each while profiling)"
      : "  kernel times: host wall time of each launch",
  ];
  if (r.steps.length > 0) {
    const label = r.steps[0].label;
    out.push(`per ${label} (${r.steps.length} ${label}s):`);
    out.push(stepLine("first", r.steps[0]));
    if (r.steps.length > 1) out.push(stepLine("median of the rest", medianStep(r.steps.slice(1))));
  }
  out.push(
    `in all: ${r.totals.ops} ops, ${r.totals.launches} launches, ${r.totals.dispatches} ` +
      `dispatches, ${r.totals.submits} submits, ${r.totals.syncs} syncs, ${mb(r.totals.bytes)} MB`,
  );
  const t = gpu ? "GPU ms" : "ms";
  out.push(
    `ops by ${gpu ? "GPU" : "host"} time (top ${Math.min(top, r.ops.length)} of ${r.ops.length}):`,
  );
  out.push(...table(
    ["op", "pass", "calls", "host ms", ...(gpu ? ["GPU ms"] : []), "share", "dispatches", "MB"],
    r.ops.slice(0, top).map((o) => [
      o.name,
      o.pass,
      String(o.calls),
      ms(o.hostMs),
      ...(gpu ? [o.deviceMs === null ? "-" : ms(o.deviceMs)] : []),
      opPct(timeOf(o)),
      String(o.dispatches),
      mb(o.bytes),
    ]),
  ));
  out.push(`kernels by ${t} (top ${Math.min(top, r.kernels.length)} of ${r.kernels.length}):`);
  out.push(...table(
    ["kernel", "calls", t, "share", "µs/call", "MB", "GB/s"],
    r.kernels.slice(0, top).map((k) => {
      const v = timeOf(k);
      return [
        k.name,
        String(k.calls),
        ms(v),
        kernelPct(v),
        ((1000 * v) / k.calls).toFixed(0),
        mb(k.bytes),
        v > 0 && k.bytes > 0 ? (k.bytes / 1e6 / v).toFixed(2) : "-",
      ];
    }),
  ));
  return out;
}
