// The profiler: where a program's time goes, per op and per kernel. While a session is active
// the engine records every op applied (host time, self and nested), every kernel launch (bytes
// its arguments span, host time), every dispatch a backend makes (the WebGPU backend stamps each
// one with GPU timestamps where the device has "timestamp-query"; host backends' kernels run in
// the launch, so its wall time is theirs), submits and syncs, grouped into steps the caller
// marks (a training iteration, a generated token). Off, the hot paths test one module binding
// (`activeProfile === null`) per op and per launch. Reports and the trace: profile_report.ts.

import { buildReport, type ProfileReport } from "./profile_report.ts";

export type { KernelStat, OpStat, ProfileReport, StepStat, TraceEvent } from "./profile_report.ts";

/** Forward or backward (inside autograd's backward()): ops are reported per pass. */
export type Pass = "forward" | "backward";

/** One kernel launch as recorded. */
export interface LaunchRecord {
  /** The kernel's name. */
  kernel: string;
  /** The op it ran under (innermost), or the kernel's name for a direct launch. */
  op: string;
  /** The pass of that op. */
  pass: Pass;
  /** Bytes its inputs and outputs span. */
  bytes: number;
  /** Host ms from the session start, and host ms spent in the launch. */
  start: number;
  hostMs: number;
  /** The step it belongs to (-1: outside any step). */
  step: number;
  /** Its dispatches (none on host backends: the launch is the run). */
  dispatches: DispatchRecord[];
}

/** One dispatch a device backend made for a launch. */
export interface DispatchRecord {
  /** The pipeline's label (a kernel variant such as `matmul[reg8x16]`, or a stage kernel). */
  label: string;
  /** The launch it belongs to. */
  launch: LaunchRecord;
  /** GPU [begin, end] in device nanoseconds, once read back; null when not timed. */
  gpu: [bigint, bigint] | null;
}

/** Dispatches stamped on the device, submitted together at host time `at` (ms). */
export interface TimedBatch {
  at: number;
  recs: DispatchRecord[];
}

/** A host span for the trace (ops, waits, steps). */
export interface HostSpan {
  name: string;
  cat: "op" | "sync" | "step" | "phase";
  start: number;
  dur: number;
  args?: Record<string, string | number>;
}

interface OpFrame {
  key: string;
  name: string;
  pass: Pass;
  start: number;
  children: number;
}

/** What an op accumulates (self time excludes the ops nested in it). */
export interface OpAccum {
  name: string;
  pass: Pass;
  calls: number;
  selfMs: number;
}

/** A recording: everything the report is built from. Create with `startProfile`. */
export class ProfileSession {
  /** performance.now() at the start; every time below is ms after it. */
  readonly origin = performance.now();
  readonly launches: LaunchRecord[] = [];
  readonly ops = new Map<string, OpAccum>();
  readonly spans: HostSpan[] = [];
  /** Per submit: host ms at the submit and its step. */
  readonly submits: { at: number; step: number }[] = [];
  /** Per sync (a readback or a backend sync): host ms waited and its step. */
  readonly syncs: { at: number; ms: number; step: number }[] = [];
  /** Steps: label, start, end (ms). */
  readonly steps: { label: string; start: number; end: number }[] = [];
  /** Submitted batches of device-timed dispatches. */
  readonly batches: TimedBatch[] = [];
  /** Device timing read-backs still in flight. */
  readonly pending: Promise<void>[] = [];
  /** Backends that may hold recorded but unsubmitted work: flushed at stop. */
  readonly flushers = new Set<() => void>();
  /** Spans kept for the trace at most (statistics go on past it). */
  readonly maxSpans: number;
  /** Some spans were dropped (over maxSpans). */
  truncated = false;
  /** Host ms at which recording stopped. */
  endedAt = NaN;
  /** Any dispatch was timed on the device. */
  deviceTimed = false;
  #stack: OpFrame[] = [];
  #launch: LaunchRecord | null = null;
  #pass: Pass = "forward";
  #step = -1;
  #stopped = false;

  constructor(o: ProfileOptions = {}) {
    this.maxSpans = o.maxTraceEvents ?? 500_000;
  }

  /** Milliseconds since the session started. */
  now(): number {
    return performance.now() - this.origin;
  }

  /** Is the session still recording? */
  get recording(): boolean {
    return !this.#stopped;
  }

  /** Run `fn` as op `name` (the engine's apply). */
  op<T>(name: string, fn: () => T): T {
    const pass = this.#pass;
    const frame = { key: `${pass}:${name}`, name, pass, start: this.now(), children: 0 };
    this.#stack.push(frame);
    try {
      return fn();
    } finally {
      this.#stack.pop();
      const dur = this.now() - frame.start;
      const acc = this.ops.get(frame.key) ?? { name, pass, calls: 0, selfMs: 0 };
      acc.calls++;
      acc.selfMs += dur - frame.children;
      this.ops.set(frame.key, acc);
      const parent = this.#stack[this.#stack.length - 1];
      if (parent) parent.children += dur;
      this.span({ name, cat: "op", start: frame.start, dur, args: { pass } });
    }
  }

  /** Run `fn` as a launch of `kernel` whose arguments span `bytes` (the engine's launch). */
  launch(kernel: string, bytes: number, fn: () => void): void {
    const top = this.#stack[this.#stack.length - 1];
    const rec: LaunchRecord = {
      kernel,
      op: top?.name ?? kernel,
      pass: top?.pass ?? this.#pass,
      bytes,
      start: this.now(),
      hostMs: 0,
      step: this.#step,
      dispatches: [],
    };
    const outer = this.#launch;
    this.#launch = rec;
    try {
      fn();
    } finally {
      this.#launch = outer;
      rec.hostMs = this.now() - rec.start;
      if (this.recording) this.launches.push(rec);
    }
  }

  /**
   * A device backend records a dispatch of the current launch (`label`: its pipeline), to be
   * stamped by the device or not; returns the record the timestamps go to.
   */
  dispatch(label: string, flusher: () => void): DispatchRecord {
    this.flushers.add(flusher);
    const launch = this.#launch ?? this.#orphan(label);
    const rec: DispatchRecord = { label, launch, gpu: null };
    launch.dispatches.push(rec);
    return rec;
  }

  /** A launch record for a dispatch made outside any launch (none today; kept for safety). */
  #orphan(label: string): LaunchRecord {
    const rec: LaunchRecord = {
      kernel: label,
      op: label,
      pass: this.#pass,
      bytes: 0,
      start: this.now(),
      hostMs: 0,
      step: this.#step,
      dispatches: [],
    };
    this.launches.push(rec);
    return rec;
  }

  /** `recs` were submitted now, stamped on the device; their timestamps (pairs) come later. */
  timed(recs: DispatchRecord[], times: Promise<BigInt64Array>): void {
    this.deviceTimed = true;
    this.batches.push({ at: this.now(), recs });
    this.pending.push(times.then((ts) => {
      recs.forEach((r, i) => (r.gpu = [ts[2 * i], ts[2 * i + 1]]));
    }));
  }

  /** A backend submitted recorded work. */
  submit(): void {
    if (this.recording) this.submits.push({ at: this.now(), step: this.#step });
  }

  /** The host waited `ms` for the device (a readback or a sync) that began at `start`. */
  sync(name: string, start: number): void {
    if (!this.recording) return;
    const ms = this.now() - start;
    this.syncs.push({ at: start, ms, step: this.#step });
    this.span({ name, cat: "sync", start, dur: ms });
  }

  /** A host span for the trace (kept up to maxSpans). */
  span(s: HostSpan): void {
    if (!this.recording) return;
    if (this.spans.length < this.maxSpans) this.spans.push(s);
    else this.truncated = true;
  }

  /** Autograd's backward begins (true) or ends (false). */
  backward(on: boolean): void {
    this.#pass = on ? "backward" : "forward";
  }

  /** A step begins (ending any open one). */
  beginStep(label: string): void {
    this.endStep();
    this.steps.push({ label, start: this.now(), end: NaN });
    this.#step = this.steps.length - 1;
  }

  /** The open step ends. */
  endStep(): void {
    if (this.#step < 0) return;
    const s = this.steps[this.#step];
    s.end = this.now();
    this.span({
      name: `${s.label} ${this.#step}`,
      cat: "step",
      start: s.start,
      dur: s.end - s.start,
    });
    this.#step = -1;
  }

  /** Stop recording: end the open step, submit what backends hold, wait for device times. */
  async stop(): Promise<void> {
    this.endStep();
    this.#stopped = true;
    this.endedAt = this.now();
    for (const flush of this.flushers) flush();
    await Promise.all(this.pending);
  }
}

/** Options of a profile. */
export interface ProfileOptions {
  /** Host spans kept for the trace (default 500,000); statistics count everything. */
  maxTraceEvents?: number;
}

/** The session recording now, or null: the one binding the engine's hot paths test. */
export let activeProfile: ProfileSession | null = null;

/** Start recording (throws if a profile is already running). */
export function startProfile(o: ProfileOptions = {}): void {
  if (activeProfile !== null) throw new Error("startProfile: a profile is already running");
  activeProfile = new ProfileSession(o);
}

/** Is a profile recording? */
export function isProfiling(): boolean {
  return activeProfile !== null;
}

/**
 * Stop recording and build the report: waits for the device's timestamps of work still in
 * flight (submitting what backends hold first). Throws if no profile is running.
 */
export async function stopProfile(): Promise<ProfileReport> {
  const s = activeProfile;
  if (s === null) throw new Error("stopProfile: no profile is running (call startProfile first)");
  activeProfile = null;
  await s.stop();
  return buildReport(s);
}

/** Profile `fn` (sync or async): its result and the report. */
export async function profile<T>(
  fn: () => T | Promise<T>,
  o: ProfileOptions = {},
): Promise<{ result: T; report: ProfileReport }> {
  startProfile(o);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    await stopProfile();
    throw e;
  }
  return { result, report: await stopProfile() };
}

/**
 * Mark the start of a step (a training iteration, a generated token), ending the previous one:
 * the report gives per-step counts and times. Free when no profile runs.
 */
export function beginStep(label = "step"): void {
  if (activeProfile !== null) activeProfile.beginStep(label);
}

/** Mark the end of the current step. Free when no profile runs. */
export function endStep(): void {
  if (activeProfile !== null) activeProfile.endStep();
}
