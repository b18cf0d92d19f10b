// The profiler's report (profile.ts records): time, calls, launches, dispatches and bytes per op
// and per kernel, counts per step, and a trace in Chrome's Trace Event Format (JSON; opens in
// Perfetto and chrome://tracing): host spans of ops, syncs and steps on one track, host kernel
// runs nested under their ops, GPU dispatches on their own track. Device timestamps have their
// own origin: they are placed on the host clock by one offset, the smallest that puts no batch's
// first dispatch before its submit, so their spacing is exact and their position a lower bound.

import type { DispatchRecord, Pass, ProfileSession } from "./profile.ts";

/** Time and traffic of one op (per pass). */
export interface OpStat {
  /** The op's name. */
  name: string;
  /** Forward, or inside autograd's backward. */
  pass: Pass;
  /** Times applied. */
  calls: number;
  /** Host ms in the op itself, not in ops nested in it (on host backends: its kernels' too). */
  hostMs: number;
  /** GPU ms of the dispatches of its launches; null where nothing was timed on a device. */
  deviceMs: number | null;
  /** Kernel launches it made. */
  launches: number;
  /** Device dispatches (a host backend's launch counts as one). */
  dispatches: number;
  /** Bytes its launches' arguments span. */
  bytes: number;
}

/** Time and traffic of one kernel (per WGSL variant on WebGPU). */
export interface KernelStat {
  /** The kernel's name, or on WebGPU its pipeline's (e.g. `matmul[reg8x16]`). */
  name: string;
  /** Dispatches (a host backend's launch counts as one). */
  calls: number;
  /** Host ms of its launches (on WebGPU: recording them; on host backends: running them). */
  hostMs: number;
  /** GPU ms; null where not timed on a device. */
  deviceMs: number | null;
  /** Bytes its launches' arguments span. */
  bytes: number;
}

/** What one step (between beginStep and endStep) did. */
export interface StepStat {
  /** Its label and index. */
  label: string;
  index: number;
  /** Host ms from its start to its end. */
  wallMs: number;
  /** GPU ms of the dispatches it recorded (they may run after it ends); null if not timed. */
  deviceMs: number | null;
  launches: number;
  dispatches: number;
  submits: number;
  syncs: number;
  /** Host ms spent waiting in syncs. */
  syncMs: number;
  bytes: number;
}

/** One event of the Trace Event Format (complete "X", instant "i" or metadata "M"). */
export interface TraceEvent {
  name: string;
  ph: "X" | "i" | "M";
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  s?: "t" | "p" | "g";
  args?: Record<string, string | number>;
}

/** What `stopProfile` returns. */
export interface ProfileReport {
  /** Host ms from start to stop. */
  wallMs: number;
  /** How kernels were timed: GPU timestamps, or host wall time only. */
  clock: "gpu-timestamp" | "wall";
  /** Everything recorded (steps or not). */
  totals: Omit<StepStat, "label" | "index" | "wallMs"> & { ops: number };
  /** Per op and pass, most time first (device time where timed, else host). */
  ops: OpStat[];
  /** Per kernel, most time first. */
  kernels: KernelStat[];
  /** Per step, in order. */
  steps: StepStat[];
  /** The trace dropped host spans past ProfileOptions.maxTraceEvents. */
  truncated: boolean;
  /** The trace: `JSON.stringify` it into a `trace.json`. */
  trace: { traceEvents: TraceEvent[]; displayTimeUnit: "ms" };
}

const gpuMs = (d: DispatchRecord) => (d.gpu ? Number(d.gpu[1] - d.gpu[0]) / 1e6 : 0);

function add<K>(m: Map<K, KernelStat>, key: K & string): KernelStat {
  let k = m.get(key);
  if (!k) m.set(key, k = { name: key, calls: 0, hostMs: 0, deviceMs: null, bytes: 0 });
  return k;
}

function addDevice(stat: { deviceMs: number | null }, d: DispatchRecord): void {
  if (d.gpu) stat.deviceMs = (stat.deviceMs ?? 0) + gpuMs(d);
}

const timeOf = (s: { hostMs: number; deviceMs: number | null }) => s.deviceMs ?? s.hostMs;

/** Per-kernel statistics: a launch's host time and bytes go to its last (main) dispatch. */
function kernelStats(s: ProfileSession): KernelStat[] {
  const m = new Map<string, KernelStat>();
  for (const l of s.launches) {
    if (l.dispatches.length === 0) {
      const k = add(m, l.kernel);
      k.calls++;
      k.hostMs += l.hostMs;
      k.bytes += l.bytes;
      continue;
    }
    l.dispatches.forEach((d, i) => {
      const k = add(m, d.label);
      k.calls++;
      addDevice(k, d);
      if (i === l.dispatches.length - 1) {
        k.hostMs += l.hostMs;
        k.bytes += l.bytes;
      }
    });
  }
  return [...m.values()].sort((a, b) => timeOf(b) - timeOf(a));
}

/** Per-op statistics: host self time from the session, device time and traffic from launches. */
function opStats(s: ProfileSession): OpStat[] {
  const m = new Map<string, OpStat>();
  const get = (name: string, pass: Pass) => {
    const key = `${pass}:${name}`;
    let o = m.get(key);
    if (!o) {
      const acc = s.ops.get(key);
      o = {
        name,
        pass,
        calls: acc?.calls ?? 0,
        hostMs: acc?.selfMs ?? 0,
        deviceMs: null,
        launches: 0,
        dispatches: 0,
        bytes: 0,
      };
      m.set(key, o);
    }
    return o;
  };
  for (const acc of s.ops.values()) get(acc.name, acc.pass);
  for (const l of s.launches) {
    const o = get(l.op, l.pass);
    if (!s.ops.has(`${l.pass}:${l.op}`)) { // a direct launch (an optimizer's), not an op
      o.calls++;
      o.hostMs += l.hostMs;
    }
    o.launches++;
    o.dispatches += Math.max(1, l.dispatches.length);
    o.bytes += l.bytes;
    for (const d of l.dispatches) addDevice(o, d);
  }
  return [...m.values()].sort((a, b) => timeOf(b) - timeOf(a));
}

function emptyCounts() {
  return {
    deviceMs: null as number | null,
    launches: 0,
    dispatches: 0,
    submits: 0,
    syncs: 0,
    syncMs: 0,
    bytes: 0,
  };
}

/** Counts per step index (-1: outside steps), and over everything. */
function counts(s: ProfileSession): { steps: StepStat[]; totals: ReturnType<typeof emptyCounts> } {
  const per = s.steps.map(() => emptyCounts());
  const totals = emptyCounts();
  const into = (step: number) => [totals, ...(step >= 0 ? [per[step]] : [])];
  for (const l of s.launches) {
    for (const c of into(l.step)) {
      c.launches++;
      c.dispatches += Math.max(1, l.dispatches.length);
      c.bytes += l.bytes;
      for (const d of l.dispatches) addDevice(c, d);
    }
  }
  for (const x of s.submits) for (const c of into(x.step)) c.submits++;
  for (const x of s.syncs) {
    for (const c of into(x.step)) {
      c.syncs++;
      c.syncMs += x.ms;
    }
  }
  const steps = s.steps.map((st, index) => ({
    label: st.label,
    index,
    wallMs: st.end - st.start,
    ...per[index],
  }));
  return { steps, totals };
}

/** The trace: host spans, host kernel runs, and GPU dispatches placed on the host clock. */
function trace(s: ProfileSession): TraceEvent[] {
  const us = (ms: number) => Math.round(ms * 1000 * 1000) / 1000;
  const meta = (tid: number, name: string): TraceEvent => ({
    name: "thread_name",
    ph: "M",
    pid: 1,
    tid,
    args: { name },
  });
  const events: TraceEvent[] = [
    { name: "process_name", ph: "M", pid: 1, tid: 0, args: { name: "bitgpt" } },
    meta(1, "host: steps"),
    meta(2, "host: ops, kernels, syncs"),
  ];
  for (const sp of s.spans) {
    events.push({
      name: sp.name,
      cat: sp.cat,
      ph: "X",
      pid: 1,
      tid: sp.cat === "step" ? 1 : 2,
      ts: us(sp.start),
      dur: us(sp.dur),
      args: sp.args,
    });
  }
  for (const l of s.launches) {
    if (l.dispatches.length > 0) continue; // a device launch: its dispatches are below
    events.push({
      name: l.kernel,
      cat: "kernel",
      ph: "X",
      pid: 1,
      tid: 2,
      ts: us(l.start),
      dur: us(l.hostMs),
      args: { op: l.op, bytes: l.bytes },
    });
  }
  for (const x of s.submits) {
    events.push({ name: "submit", cat: "submit", ph: "i", s: "t", pid: 1, tid: 2, ts: us(x.at) });
  }
  const timed = s.batches.filter((b) => b.recs.some((d) => d.gpu));
  if (timed.length === 0) return events;
  events.push(meta(3, "gpu: dispatches"));
  // The smallest offset (ms) that puts no batch's first dispatch before its submit.
  let offset = -Infinity;
  for (const b of timed) {
    const first = b.recs.reduce(
      (m, d) => (d.gpu && d.gpu[0] < m ? d.gpu[0] : m),
      b.recs[0].gpu![0],
    );
    offset = Math.max(offset, b.at - Number(first) / 1e6);
  }
  for (const b of timed) {
    for (const d of b.recs) {
      if (!d.gpu) continue;
      events.push({
        name: d.label,
        cat: "dispatch",
        ph: "X",
        pid: 1,
        tid: 3,
        ts: us(Number(d.gpu[0]) / 1e6 + offset),
        dur: us(gpuMs(d)),
        args: { op: d.launch.op, kernel: d.launch.kernel, bytes: d.launch.bytes },
      });
    }
  }
  return events;
}

/** Build the report of a stopped session. */
export function buildReport(s: ProfileSession): ProfileReport {
  const { steps, totals } = counts(s);
  let ops = 0;
  for (const o of s.ops.values()) ops += o.calls;
  return {
    wallMs: s.endedAt,
    clock: s.deviceTimed ? "gpu-timestamp" : "wall",
    totals: { ...totals, ops },
    ops: opStats(s),
    kernels: kernelStats(s),
    steps,
    truncated: s.truncated,
    trace: { traceEvents: trace(s), displayTimeUnit: "ms" },
  };
}
