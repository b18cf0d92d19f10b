// Ctrl-C typed in a real terminal (a pseudo-terminal) while `deno task train` runs, on both
// backends (issue 14): `deno task` forwards the terminal's SIGINT to a child that already got
// it, and those copies (even some tens of milliseconds apart) must count as one: the run saves
// a resumable last.safetensors and exits 130. A later, separate Ctrl-C quits at once; SIGTERM saves like Ctrl-C.

import { ok, strictEqual } from "node:assert/strict";
import { loadCheckpoint } from "../../models/checkpoint.ts";
import { writeSlice } from "./cli_util.ts";
import { endlessRun, hasPty, PtyRun } from "./pty_util.ts";
import { hasWebGPU } from "../util.ts";

const DENO = Deno.execPath();

const tempDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of tempDirs) Deno.removeSync(d, { recursive: true });
});

async function tempDir(): Promise<string> {
  const d = await Deno.makeTempDir({ prefix: "bitgpt_sig_" });
  tempDirs.push(d);
  return d;
}

/** The iteration saved by an interrupted run, checked resumable. */
async function savedIteration(text: string): Promise<number> {
  const m = text.match(/interrupted at iteration (\d+); saved (\S*last\.safetensors)/);
  ok(m, `no save reported:\n${text.slice(-2000)}`);
  const ck = loadCheckpoint(await Deno.readFile(m[2]));
  strictEqual(ck.iteration, Number(m[1]));
  ok(ck.optimizer !== null && ck.rng !== null, "resumable");
  ck.model.dispose();
  return ck.iteration;
}

for (const backend of ["cpu", "webgpu"]) {
  Deno.test({
    name: `${backend}: Ctrl-C in a terminal under deno task saves a resumable checkpoint, exit 130`,
    ignore: !hasPty || (backend === "webgpu" && !hasWebGPU),
    async fn() {
      const dir = await tempDir();
      const dataset = await writeSlice(dir);
      const run = new PtyRun([
        DENO,
        "task",
        "-q",
        "train",
        ...endlessRun(dataset, `${dir}/out`, backend),
      ]);
      // Interrupt mid-interval, after the first evaluation's checkpoints.
      ok(await run.waitFor(/saved \S+ckpt\.safetensors[^]*iter +5\//, 300_000), run.text);
      // One press, then a copy 60 ms later (as a forwarded signal can lag): still one request.
      await run.send("ctrlc");
      await new Promise((r) => setTimeout(r, 60));
      await run.send("ctrlc");
      strictEqual(await run.finish(), 130, run.text.slice(-2000));
      ok(run.text.includes("interrupt (SIGINT): finishing this step"), run.text.slice(-2000));
      ok(!run.text.includes("quitting now"), "the copies of one Ctrl-C must not quit");
      ok((await savedIteration(run.text)) >= 5);
    },
  });
}

Deno.test({
  name: "cpu: SIGTERM saves like Ctrl-C; a second, separate Ctrl-C quits at once",
  ignore: !hasPty,
  async fn() {
    const dir = await tempDir();
    const dataset = await writeSlice(dir);
    const term = new PtyRun([
      DENO,
      "task",
      "-q",
      "train",
      ...endlessRun(dataset, `${dir}/a`, "cpu"),
    ]);
    ok(await term.waitFor(/iter +5\//), term.text);
    await term.send("term");
    strictEqual(await term.finish(), 130, term.text.slice(-2000));
    ok(term.text.includes("interrupt (SIGTERM)"), term.text.slice(-2000));
    await savedIteration(term.text);
    // Steps of a few seconds: the second Ctrl-C lands while the first waits for the step.
    const slow = endlessRun(dataset, `${dir}/b`, "cpu").map((a) => (a === "nano" ? "baby" : a));
    const run = new PtyRun([DENO, "task", "-q", "train", ...slow, "--batch-size", "64"]);
    ok(await run.waitFor(/saved \S+ckpt\.safetensors/, 300_000), run.text);
    await run.send("ctrlc");
    await new Promise((r) => setTimeout(r, 1000));
    await run.send("ctrlc");
    strictEqual(await run.finish(), 130, run.text.slice(-2000));
    ok(run.text.includes("interrupt (SIGINT) again: quitting now"), run.text.slice(-2000));
    ok(!run.text.includes("interrupted at iteration"), "quit without saving the step");
    // The checkpoint of the last evaluation is still there and loads.
    loadCheckpoint(await Deno.readFile(`${dir}/b/last.safetensors`)).model.dispose();
  },
});
