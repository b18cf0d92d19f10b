// The buffer pool's peak counters (for memory reports such as tests/bench/scale_step.ts):
// peakLiveBytes follows the most live bytes, peakHeldBytes live plus free-list bytes, and
// resetPeak starts both again from the current state.

import { ok, strictEqual } from "node:assert/strict";
import { zeros } from "../../engine/creation.ts";
import { webgpuBackend } from "../../engine/device.ts";
import { sizeClass } from "../../engine/webgpu/pool.ts";
import { hasWebGPU } from "../util.ts";

Deno.test({
  name: "pool peaks: live and held bytes, reset",
  ignore: !hasWebGPU,
  fn: async () => {
    const be = await webgpuBackend();
    await be.sync();
    be.pool.resetPeak();
    const s0 = { ...be.stats() };
    strictEqual(s0.peakLiveBytes, s0.liveBytes);
    strictEqual(s0.peakHeldBytes, s0.liveBytes + s0.pooledBytes);
    const n = 3000 + Math.floor(Math.random() * 50); // a size class no other test holds
    const cls = sizeClass(n * 4);
    const a = zeros([n], { backend: be, dtype: "f32" });
    const b = zeros([n], { backend: be, dtype: "f32" });
    a.dispose();
    b.dispose();
    const s1 = { ...be.stats() };
    strictEqual(s1.liveBytes, s0.liveBytes);
    ok(s1.peakLiveBytes >= s0.liveBytes + 2 * cls, "two buffers were live at once");
    ok(s1.peakHeldBytes >= s1.peakLiveBytes);
    be.pool.resetPeak();
    strictEqual(be.stats().peakLiveBytes, s1.liveBytes);
    const c = zeros([n], { backend: be, dtype: "f32" }); // reused: held bytes do not grow
    strictEqual(be.stats().peakHeldBytes, s1.liveBytes + s1.pooledBytes);
    c.dispose();
  },
});
