// The CLI's outputs that need no model: the progress display (terminal and plain modes), the
// loss plot's SVG, metrics.jsonl round trips and resume trimming, atomic writes, and the W&B
// fallback when no API key is set.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { formatCount, formatDuration, Progress } from "../../cli/progress.ts";
import { lossPlotSvg, niceTicks } from "../../cli/plot.ts";
import { curvesOf, MetricsLog, parseMetrics } from "../../cli/metrics.ts";
import { fileExists, joinPath, writeFileAtomic } from "../../cli/files.ts";
import { openWandb } from "../../cli/wandb.ts";

function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 0;
  return { now: () => t, advance: (ms) => (t += ms) };
}

Deno.test("progress: durations and counts format compactly", () => {
  strictEqual(formatDuration(42), "42s");
  strictEqual(formatDuration(25 * 60 + 7), "25m07s");
  strictEqual(formatDuration(3 * 3600 + 5 * 60), "3h05m");
  strictEqual(formatDuration(12 * 86400 + 3 * 3600), "12d03h");
  strictEqual(formatDuration(NaN), "?");
  strictEqual(formatCount(950), "950");
  strictEqual(formatCount(12345), "12.3k");
  strictEqual(formatCount(2.5e6), "2.50M");
});

Deno.test("progress: plain mode prints a line every log interval with loss, lr, tok/s, ETA", () => {
  const out: string[] = [];
  const clock = fakeClock();
  const p = new Progress({
    total: 10,
    tokensPerIter: 1000,
    isTTY: false,
    logInterval: 4,
    write: (s) => out.push(s),
    now: clock.now,
  });
  for (let i = 0; i < 10; i++) {
    clock.advance(100);
    p.step({ iter: i, loss: 3 - i / 10, lr: 1e-3, ms: 100 });
  }
  // Every 4th iteration (0-based, as the eval lines) and the last.
  deepStrictEqual(out.map((l) => l.split(" | ")[0]), [
    "iter  0/10",
    "iter  4/10",
    "iter  8/10",
    "iter  9/10",
  ]);
  ok(out.every((l) => l.endsWith("\n") && !l.includes("\r")));
  strictEqual(
    out[2],
    "iter  8/10 | loss 2.2000 | lr 1.00e-3 | 100 ms/it | 10.0k tok/s | ETA 0s\n",
  );
  ok(out[1].includes("ETA 1s"), out[1]); // 5 left at 100 ms each = 0.5 s, rounded up
});

Deno.test("progress: terminal mode redraws one line in place and keeps logs apart", () => {
  const out: string[] = [];
  const clock = fakeClock();
  const p = new Progress({
    total: 1000,
    tokensPerIter: 64,
    isTTY: true,
    logInterval: 100,
    write: (s) => out.push(s),
    now: clock.now,
    columns: 80,
  });
  p.step({ iter: 1, loss: 4, lr: 1e-4, ms: 500 });
  clock.advance(50);
  p.step({ iter: 2, loss: 4, lr: 1e-4, ms: 50 }); // within 100 ms of the last draw: skipped
  clock.advance(200);
  p.step({ iter: 3, loss: 3.9, lr: 1e-4, ms: 200 });
  strictEqual(out.length, 2);
  ok(out.every((s) => s.startsWith("\r\x1b[2K") && !s.includes("\n")));
  ok(out[1].includes("iter    3/1000") && out[1].includes("ETA"));
  ok(out.every((s) => s.length <= 80 + 5));
  const logged: string[] = [];
  p.log("step 3: train loss 3.9000, val loss 3.9500", (s) => logged.push(s));
  deepStrictEqual(logged, ["step 3: train loss 3.9000, val loss 3.9500\n"]);
  // Erased before the log line, redrawn after it.
  strictEqual(out[2], "\r\x1b[2K");
  strictEqual(out[3], out[1]);
  p.finish();
  strictEqual(out[4], "\n");
});

Deno.test("plot: niceTicks uses 1-2-5 steps covering the range", () => {
  deepStrictEqual(niceTicks(0, 2000, 7), [0, 500, 1000, 1500, 2000]);
  deepStrictEqual(niceTicks(1.3, 4.4, 8), [1.5, 2, 2.5, 3, 3.5, 4]);
  deepStrictEqual(niceTicks(0.02, 0.1, 4), [0.02, 0.04, 0.06, 0.08, 0.1]);
});

Deno.test("plot: the SVG has axes, labels, a legend and one path per curve", () => {
  const svg = lossPlotSvg({
    batch: [[1, 4.2], [10, 3.1], [20, 2.6]],
    train: [[0, 4.1], [20, 2.5]],
    val: [[0, 4.15], [20, 2.7]],
  }, "gpt <nano> & char");
  ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  ok(svg.trimEnd().endsWith("</svg>"));
  strictEqual(svg.match(/<polyline /g)?.length, 3);
  for (const label of ["iteration", "loss", "train (batch)", "train (eval)", "val (eval)"]) {
    ok(svg.includes(`>${label}</text>`), `missing label ${label}`);
  }
  ok(svg.includes("gpt &#60;nano&#62; &#38; char"), "title must be XML-escaped");
  ok(!/NaN|undefined|Infinity/.test(svg));
  // Points map inside the plot frame (x in [64, 696], y in [44, 364]).
  for (const m of svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)) {
    const [x, y] = [Number(m[1]), Number(m[2])];
    ok(x >= 64 && x <= 696 && y >= 44 && y <= 364, `point (${x}, ${y}) outside the frame`);
  }
});

Deno.test("plot: empty, single-point and non-finite curves still give a valid document", () => {
  const empty = lossPlotSvg({ batch: [], train: [], val: [] });
  ok(empty.includes("</svg>") && !/NaN|Infinity/.test(empty));
  const one = lossPlotSvg({ batch: [], train: [[0, 4]], val: [[0, NaN]] });
  ok(one.includes("<circle") && !/NaN|Infinity/.test(one));
});

Deno.test("metrics: append, parse (skipping a cut line), curves, and trimming on resume", async () => {
  const dir = await Deno.makeTempDir();
  const path = joinPath(dir, "metrics.jsonl");
  const log = await MetricsLog.open(path);
  await log.append({ type: "train", iter: 5, loss: 3, lr: 1e-3, ms: 10, tokensPerSec: 100 });
  await log.append({ type: "eval", iter: 10, train: 2.5, val: 2.6, lr: 1e-3 });
  await log.append({ type: "eval", iter: 20, train: 2.0, val: 2.2, lr: 1e-3 });
  await Deno.writeTextFile(path, '{"type":"train","it', { append: true }); // a crash mid-line
  const parsed = parseMetrics(await Deno.readTextFile(path));
  strictEqual(parsed.length, 3);
  deepStrictEqual(curvesOf(parsed), {
    batch: [[5, 3]],
    train: [[10, 2.5], [20, 2.0]],
    val: [[10, 2.6], [20, 2.2]],
  });
  // Resuming from iteration 10 keeps records up to 10 and drops the rest.
  const resumed = await MetricsLog.open(path, 10);
  deepStrictEqual(resumed.records.map((r) => r.iter), [5, 10]);
  deepStrictEqual(parseMetrics(await Deno.readTextFile(path)).map((r) => r.iter), [5, 10]);
  // A fresh run truncates.
  const fresh = await MetricsLog.open(path);
  strictEqual(fresh.records.length, 0);
  strictEqual(await Deno.readTextFile(path), "");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("files: atomic writes replace the file and leave no temporary behind", async () => {
  const dir = await Deno.makeTempDir();
  const path = joinPath(dir + "/", "a.bin");
  strictEqual(path, `${dir}/a.bin`);
  await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
  await writeFileAtomic(path, "hello");
  strictEqual(await Deno.readTextFile(path), "hello");
  ok(await fileExists(path));
  ok(!(await fileExists(joinPath(dir, "missing"))));
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  deepStrictEqual(names, ["a.bin"]);
  // A failed write (directory missing) throws and leaves nothing.
  let threw = false;
  try {
    await writeFileAtomic(joinPath(dir, "no/such/dir/x"), "x");
  } catch {
    threw = true;
  }
  ok(threw);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("wandb: without WANDB_API_KEY, one warning line and no remote log", async () => {
  const warnings: string[] = [];
  const remote = await openWandb({
    project: "p",
    config: {},
    warn: (l) => warnings.push(l),
    env: () => undefined,
  });
  strictEqual(remote, null);
  strictEqual(warnings.length, 1);
  ok(/WANDB_API_KEY is not set; logging to metrics.jsonl only/.test(warnings[0]));
});
