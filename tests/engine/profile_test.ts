// The profiler: per-op and per-kernel counts, passes, bytes and steps on the CPU backend (wall
// time); on WebGPU every dispatch stamped by the device, results bit-identical with the profiler
// on; split launches counted once with their pieces; the trace's spans nest; nothing is recorded
// when off, and misuse is a clear error.

import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { CpuBackend } from "../../engine/cpu/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import {
  activeProfile,
  beginStep,
  endStep,
  isProfiling,
  profile,
  type ProfileReport,
  startProfile,
  stopProfile,
  type TraceEvent,
} from "../../engine/profile.ts";
import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { add, gelu, matmul, neg, sum } from "../../kernels/mod.ts";
import { cpu, gpu, hasWebGPU, randnArray } from "../util.ts";

const t = (shape: number[], be: Backend, seed = 1, grad = false): Tensor => {
  const x = fromArray(Float32Array.from(randnArray(shape[0] * shape[1], seed)), shape, {
    backend: be,
  });
  x.requiresGrad = grad;
  return x;
};

/** sum(gelu(a·b) + a·b) with a gradient for a: one matmul forward, two in the backward. */
async function work(be: Backend): Promise<number[]> {
  const a = t([5, 7], be, 1, true);
  const b = t([7, 3], be, 2);
  const y = matmul(a, b);
  const loss = sum(add(gelu(y), y));
  loss.backward();
  return [await loss.item(), ...await a.grad!.data()];
}

/** Spans of one trace thread either nest or follow each other. */
function assertNested(events: TraceEvent[]): void {
  const byTid = new Map<number, TraceEvent[]>();
  for (const e of events.filter((e) => e.ph === "X")) {
    byTid.set(e.tid, [...(byTid.get(e.tid) ?? []), e]);
  }
  for (const [tid, es] of byTid) {
    es.sort((x, y) => x.ts! - y.ts! || y.dur! - x.dur!);
    const open: TraceEvent[] = [];
    for (const e of es) {
      while (open.length && open.at(-1)!.ts! + open.at(-1)!.dur! <= e.ts! + 1e-3) open.pop();
      const top = open.at(-1);
      ok(
        !top || e.ts! + e.dur! <= top.ts! + top.dur! + 1e-3,
        `trace thread ${tid}: ${e.name} overlaps ${top?.name} without nesting in it`,
      );
      open.push(e);
    }
  }
}

Deno.test("profile on the CPU: ops per pass, kernels, bytes, launches, syncs, a nested trace", async () => {
  const { result, report } = await profile(() => work(cpu));
  strictEqual(result.length, 1 + 35);
  strictEqual(report.clock, "wall");
  const op = (name: string, pass: string) =>
    report.ops.find((o) => o.name === name && o.pass === pass);
  strictEqual(op("matmul", "forward")?.calls, 1);
  strictEqual(op("matmul", "backward")?.calls, 2); // dA = dY·Bᵀ, dB = Aᵀ·dY (made, unused)
  strictEqual(op("gelu", "forward")?.calls, 1);
  strictEqual(op("gelu_backward", "backward")?.calls, 1);
  // matmul [5,7]·[7,3] -> [5,3], f32: 35 + 21 + 15 elements read and written.
  strictEqual(op("matmul", "forward")?.bytes, 4 * (35 + 21 + 15));
  const k = report.kernels.find((k) => k.name === "gelu")!;
  deepStrictEqual([k.calls, k.bytes, k.deviceMs], [1, 4 * 30, null]);
  ok(k.hostMs > 0);
  strictEqual(report.totals.syncs, 2); // loss.item() and a.grad.data()
  strictEqual(report.totals.submits, 0);
  strictEqual(report.totals.dispatches, report.totals.launches);
  strictEqual(report.kernels.reduce((n, k) => n + k.calls, 0), report.totals.launches);
  const { traceEvents } = JSON.parse(JSON.stringify(report.trace)) as ProfileReport["trace"];
  ok(traceEvents.some((e) => e.name === "backward" && e.cat === "phase"));
  strictEqual(traceEvents.filter((e) => e.cat === "kernel").length, report.totals.launches);
  assertNested(traceEvents);
});

Deno.test("profile steps: per-step counts, work outside steps only in the totals", async () => {
  startProfile();
  const x = t([4, 4], cpu);
  neg(x).dispose(); // before any step
  for (let i = 0; i < 3; i++) {
    beginStep("iteration");
    for (let j = 0; j <= i; j++) neg(x).dispose();
    await x.data();
    endStep();
  }
  beginStep("iteration"); // left open: stopProfile ends it
  neg(x).dispose();
  const report = await stopProfile();
  deepStrictEqual(report.steps.map((s) => [s.label, s.launches, s.syncs]), [
    ["iteration", 1, 1],
    ["iteration", 2, 1],
    ["iteration", 3, 1],
    ["iteration", 1, 0],
  ]);
  strictEqual(report.totals.launches, 8);
  strictEqual(report.steps[2].bytes, 3 * 2 * 64);
  ok(report.steps.every((s) => s.wallMs >= 0 && s.deviceMs === null));
});

Deno.test("a launch cut into pieces counts once, with its bytes", async () => {
  const small = new CpuBackend({ maxBindingBytes: 64 });
  const x = t([8, 8], small); // 256 bytes: the copy runs as pieces of 64 bytes
  const { report } = await profile(() => neg(x).dispose());
  deepStrictEqual(report.kernels.map((k) => [k.name, k.calls, k.bytes]), [["neg", 1, 512]]);
});

Deno.test("off: nothing is recorded; misuse is a clear error", async () => {
  strictEqual(activeProfile, null);
  strictEqual(isProfiling(), false);
  beginStep(); // free when off
  endStep();
  neg(t([2, 2], cpu)).dispose();
  await rejects(() => stopProfile(), /stopProfile: no profile is running/);
  startProfile();
  throws(() => startProfile(), /startProfile: a profile is already running/);
  await stopProfile();
  await rejects(() => profile(() => Promise.reject(new Error("boom"))), /boom/);
  strictEqual(activeProfile, null); // stopped although fn threw
});

Deno.test({
  name: "profile on WebGPU: each dispatch stamped by the device, same results as unprofiled",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu() as WebGpuBackend;
    const want = await work(g);
    const before = g.stats().submits;
    const { result, report } = await profile(() => work(g));
    deepStrictEqual(result, want); // one pass per dispatch changes nothing computed
    const stamped = g.device.features.has("timestamp-query");
    strictEqual(report.clock, stamped ? "gpu-timestamp" : "wall");
    strictEqual(report.totals.submits, g.stats().submits - before);
    ok(report.totals.syncs >= 2);
    const matmul = report.kernels.find((k) => k.name.startsWith("matmul["));
    ok(matmul, `a matmul variant among ${report.kernels.map((k) => k.name)}`);
    const gpuEvents = report.trace.traceEvents.filter((e) => e.cat === "dispatch");
    if (stamped) {
      ok(report.kernels.every((k) => k.deviceMs !== null && k.deviceMs >= 0));
      strictEqual(gpuEvents.length, report.totals.dispatches);
      ok(report.totals.deviceMs! > 0);
    }
    assertNested(report.trace.traceEvents);
  },
});
