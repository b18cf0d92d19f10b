// `train` checks before it works (issue 14): a bad --out-dir, an earlier run, files it did not
// write, a directory where a checkpoint goes, and a run too large for the machine are one-line
// errors before anything is written; --overwrite replaces only an earlier run; --resume takes
// the newest checkpoint by iteration, falls back from a damaged one, and writes where it read;
// leftover temporary files of killed writes are removed at the next start.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { loadCheckpoint } from "../../models/checkpoint.ts";
import { copyDir, nanoFlags, PERMISSIONS, runCli, sharedRun, writeSlice } from "./cli_util.ts";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const tempDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of tempDirs) {
    try {
      Deno.removeSync(d, { recursive: true });
    } catch {
      // moved or removed by the test
    }
  }
});

async function tempDir(): Promise<string> {
  const d = await Deno.makeTempDir({ prefix: "bitgpt_rundir_" });
  tempDirs.push(d);
  return d;
}

/** The nano flags of cli_util without --max-iters, whose value the caller gives. */
function nanoFlagsNoMax(dataset: string, out: string): string[] {
  const f = nanoFlags(dataset, out);
  const i = f.indexOf("--max-iters");
  return [...f.slice(0, i), ...f.slice(i + 2)];
}

/** A one-line error with this exit code and message. */
function oneLine(r: { code: number; stderr: string }, code: number, pattern: RegExp): void {
  strictEqual(r.code, code, r.stderr);
  ok(pattern.test(r.stderr), r.stderr);
  strictEqual(r.stderr.trim().split("\n").length, 1, r.stderr);
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) out[e.name] = Array.from(await Deno.readFile(`${dir}/${e.name}`)).join(",");
  }
  return out;
}

Deno.test("train: an --out-dir that is a file, under a file, or not writable is one line", async () => {
  const dir = await tempDir();
  const dataset = await writeSlice(dir, 5000);
  await Deno.writeTextFile(`${dir}/afile`, "x");
  const flags = (out: string) => nanoFlags(dataset, out);
  oneLine(
    await runCli(["train", ...flags(`${dir}/afile`)]),
    2,
    /^error: --out-dir '.*afile' is a file, not a directory/,
  );
  oneLine(
    await runCli(["train", ...flags(`${dir}/afile/sub`)]),
    2,
    /^error: --out-dir '.*afile\/sub': a part of the path is a file, not a directory/,
  );
  // Not writable: write permission for another folder only (root ignores file modes).
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...PERMISSIONS.filter((p) => p !== "--allow-write"),
      `--allow-write=${dir}/other`,
      MAIN,
      "train",
      ...flags(`${dir}/ro`),
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const r = await child.output();
  const stderr = new TextDecoder().decode(r.stderr);
  oneLine({ code: r.code, stderr }, 2, /^error: --out-dir '.*\/ro': is not writable/);
  if (Deno.uid() !== 0) {
    await Deno.mkdir(`${dir}/locked`, { mode: 0o500 });
    oneLine(await runCli(["train", ...flags(`${dir}/locked`)]), 2, /is not writable/);
  }
});

Deno.test("train: an earlier run is refused without --resume or --overwrite; foreign files never replaced", async () => {
  const { dir: trained, dataset } = await sharedRun();
  tempDirs.push(trained.replace(/\/out$/, "")); // the shared run's folder, removed at the end
  const run = await copyDir(trained);
  tempDirs.push(run);
  const before = await snapshot(run);
  oneLine(
    await runCli(["train", ...nanoFlags(dataset, run)]),
    2,
    /^error: --out-dir '.*' holds an earlier run \(config\.json, metrics\.jsonl, loss\.svg, ckpt\.safetensors, ckpt\.ternary\.safetensors, last\.safetensors\); continue it with --resume, replace it with --overwrite/,
  );
  deepStrictEqual(await snapshot(run), before, "nothing touched");
  // Files with our names that we did not write: refused even with --overwrite, left as they are.
  for (
    const [name, text] of [["config.json", '{"lr": 1, "mine": true}'], [
      "metrics.jsonl",
      "a,b\n1,2\n",
    ], ["loss.svg", "<svg></svg>"]]
  ) {
    const dir = await tempDir();
    await Deno.writeTextFile(`${dir}/${name}`, text);
    oneLine(
      await runCli(["train", ...nanoFlags(dataset, dir), "--overwrite"]),
      1,
      new RegExp(`^error: '.*${name.replace(".", "\\.")}' was not written by bitgpt train`),
    );
    strictEqual(await Deno.readTextFile(`${dir}/${name}`), text);
  }
  // A directory where a checkpoint goes: refused at the start, not at the end of the run.
  const withDir = await tempDir();
  await Deno.mkdir(`${withDir}/ckpt.safetensors`);
  oneLine(
    await runCli(["train", ...nanoFlags(dataset, withDir)]),
    1,
    /^error: '.*ckpt\.safetensors' is not a file/,
  );
  // --overwrite replaces the earlier run's files.
  const flags = nanoFlagsNoMax(dataset, run).map((a) => (a === "30" ? "2" : a));
  const over = await runCli(["train", ...flags, "--max-iters", "3", "--overwrite"]);
  strictEqual(over.code, 0, over.stderr);
  ok(over.stderr.includes("note: --overwrite: removed the earlier run's config.json"), over.stderr);
  strictEqual(loadCheckpoint(await Deno.readFile(`${run}/last.safetensors`)).iteration, 3);
});

Deno.test("train --resume: newest by iteration, a damaged one skipped, written where it was read, temps removed", async () => {
  const { dir: trained, dataset } = await sharedRun();
  const run = await copyDir(trained);
  tempDirs.push(run);
  // ckpt (iteration 59) newer by iteration than an older last.safetensors (iteration 31), even
  // though last's file is the more recently written.
  tempDirs.push(`${run}-early`);
  const early = await runCli([
    "train",
    ...nanoFlags(dataset, `${run}-early`).map((a) => (a === "60" ? "31" : a)),
  ]);
  strictEqual(early.code, 0, early.stderr);
  await Deno.copyFile(`${run}-early/last.safetensors`, `${run}/last.safetensors`);
  strictEqual(loadCheckpoint(await Deno.readFile(`${run}/last.safetensors`)).iteration, 31);
  await Deno.writeFile(`${run}/ckpt.safetensors.tmp-0123abcd`, new Uint8Array(10));
  // The run moved: its config.json still names the old directory; it must write here.
  const moved = `${run}-moved`;
  tempDirs.push(moved);
  await Deno.rename(run, moved);
  const r = await runCli([
    "train",
    "--resume",
    "--out-dir",
    moved,
    "--backend",
    "cpu",
    "--max-iters",
    "62",
    "--lr-decay-iters",
    "70",
  ]);
  strictEqual(r.code, 0, r.stderr);
  ok(r.stdout.includes(`resuming from ${moved}/ckpt.safetensors`), r.stdout);
  ok(r.stderr.includes("note: removed 1 temporary file(s)"), r.stderr);
  ok(/^resuming at iteration 59 of 62$/m.test(r.stdout), r.stdout);
  strictEqual(JSON.parse(await Deno.readTextFile(`${moved}/config.json`)).outDir, moved);
  strictEqual(loadCheckpoint(await Deno.readFile(`${moved}/last.safetensors`)).iteration, 62);
  let old = true;
  await Deno.stat(run).catch(() => (old = false));
  ok(!old, "nothing written at the old path");
  // A damaged newest checkpoint: a warning, and the older one is used.
  const bytes = await Deno.readFile(`${moved}/last.safetensors`);
  await Deno.writeFile(`${moved}/last.safetensors`, bytes.subarray(0, bytes.length - 7));
  const again = await runCli([
    "train",
    "--resume",
    "--out-dir",
    moved,
    "--backend",
    "cpu",
    "--max-iters",
    "64",
    "--lr-decay-iters",
    "70",
  ]);
  strictEqual(again.code, 0, again.stderr);
  ok(
    /^warning: '.*last\.safetensors' is not a usable checkpoint .*; trying .*ckpt\.safetensors$/m
      .test(again.stderr),
    again.stderr,
  );
});

Deno.test("train: a model or batch too large for the machine is refused before allocating", async () => {
  const dir = await tempDir();
  const dataset = await writeSlice(dir, 5000);
  const wide = await runCli([
    "train",
    ...nanoFlags(dataset, `${dir}/wide`),
    "--n-embd",
    "1048576",
    "--n-head",
    "4",
  ]);
  oneLine(
    wide,
    2,
    /^error: the run needs about [\d.]+ TB .* more than this machine's [\d.]+ GB; use a smaller --batch-size/,
  );
  const big = await runCli([
    "train",
    ...nanoFlags(dataset, `${dir}/big`),
    "--batch-size",
    "100000000",
  ]);
  oneLine(big, 2, /^error: the run needs about .*batch 25\.6 GB\), more than this machine's/);
  for (const d of ["wide", "big"]) {
    let left = true;
    await Deno.stat(`${dir}/${d}`).catch(() => (left = false));
    ok(!left, `no empty ${d} directory left behind`);
  }
});
