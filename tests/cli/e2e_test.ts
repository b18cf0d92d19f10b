// End to end on the CPU backend: `train` a nano char-level model on a slice of tiny Shakespeare
// (checkpoint, metrics, plot, falling val loss), `generate` from it (streamed text that starts
// with the prompt, separators), `--resume`, Ctrl-C during training, `--chat` on piped input,
// and the one-line errors for a missing, corrupt or mismatched checkpoint and bad flags.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { loadCheckpoint } from "../../models/checkpoint.ts";
import { readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";
import { parseMetrics } from "../../cli/metrics.ts";
import {
  cliCommand,
  copyDir,
  evalLines,
  nanoFlags,
  runCli,
  sharedRun,
  writeSlice,
} from "./cli_util.ts";

const tempDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of tempDirs) Deno.removeSync(d, { recursive: true });
});

async function tempDir(): Promise<string> {
  const d = await Deno.makeTempDir({ prefix: "bitgpt_cli_" });
  tempDirs.push(d);
  return d;
}

Deno.test("train (cpu): a nano char run writes checkpoint, metrics and plot; val loss falls", async () => {
  const { dir, result } = await sharedRun();
  tempDirs.push(dir.replace(/\/out$/, ""));
  const { stdout } = result;
  ok(/^device: cpu/m.test(stdout), stdout);
  ok(/^model: bitgpt, [\d.]+M parameters/m.test(stdout), stdout);
  ok(/^tokens per iteration: 128 \(batch 4 × block 32\)$/m.test(stdout), stdout);
  const evals = evalLines(stdout);
  deepStrictEqual(evals.map((e) => e.iter), [0, 30, 59]);
  ok(evals[2].val < evals[0].val - 0.3, `val loss did not fall: ${JSON.stringify(evals)}`);
  ok(/^done: 60 iterations/m.test(stdout), stdout);
  // Files: checkpoint (loadable, at the last improving eval), metrics, plot, run config.
  const ckpt = loadCheckpoint(await Deno.readFile(`${dir}/ckpt.safetensors`));
  strictEqual(ckpt.kind, "bitgpt");
  strictEqual(ckpt.iteration, 59);
  strictEqual(JSON.parse(ckpt.tokenizer!).kind, "char");
  ckpt.model.dispose();
  const records = parseMetrics(await Deno.readTextFile(`${dir}/metrics.jsonl`));
  deepStrictEqual(records.filter((r) => r.type === "eval").map((r) => r.iter), [0, 30, 59]);
  ok(records.filter((r) => r.type === "train").length >= 6);
  const svg = await Deno.readTextFile(`${dir}/loss.svg`);
  ok(svg.startsWith("<svg") && svg.includes("val (eval)") && svg.includes("<polyline"));
  strictEqual(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).maxIters, 60);
  // BitGPT runs also write the packed ternary inference file beside the checkpoint.
  ok(stdout.includes(`saved ${dir}/ckpt.safetensors and ${dir}/ckpt.ternary.safetensors`));
  const packed = readSafetensors(await Deno.readFile(`${dir}/ckpt.ternary.safetensors`));
  strictEqual(packed.metadata.iteration, "59");
  strictEqual(packed.tensors["transformer.h.0.attn.q_proj.weight_packed"].dtype, "U32");
  // No temporary files are left behind by the atomic writes.
  for await (const e of Deno.readDir(dir)) ok(!e.name.includes(".tmp"), e.name);
});

Deno.test("generate (cpu): streams samples that start with the prompt, with separators", async () => {
  const { dir } = await sharedRun();
  const r = await runCli([
    ...["generate", "--out-dir", dir, "--backend", "cpu", "--prompt", "ROMEO:"],
    ...["--max-new-tokens", "30", "--num-samples", "2", "--seed", "5"],
  ]);
  strictEqual(r.code, 0, r.stderr);
  const samples = r.stdout.split("---------------\n");
  strictEqual(samples.length, 3); // two samples and what follows the last separator
  strictEqual(samples[2], "");
  for (const s of samples.slice(0, 2)) {
    ok(s.startsWith("ROMEO:"), s);
    strictEqual([...s].length, "ROMEO:".length + 30 + 1); // one char per token, then "\n"
  }
  ok(samples[0] !== samples[1], "two samples of one seed should differ");
  ok(/generated 60 tokens/.test(r.stderr), r.stderr);
  // Same seed, same text.
  const again = await runCli([
    ...["generate", "--out-dir", dir, "--backend", "cpu", "--prompt", "ROMEO:"],
    ...["--max-new-tokens", "30", "--num-samples", "2", "--seed", "5"],
  ]);
  strictEqual(again.stdout, r.stdout);
  // An empty prompt starts from token 0, as the original.
  const empty = await runCli([
    ...["generate", "--out-dir", dir, "--backend", "cpu", "--max-new-tokens", "10"],
    ...["--num-samples", "1", "--temperature", "0"],
  ]);
  strictEqual(empty.code, 0, empty.stderr);
  strictEqual([...empty.stdout.split("---------------\n")[0]].length, 1 + 10 + 1);
});

Deno.test("generate (cpu): BitGPT runs from the packed ternary file; greedy text is unchanged", async () => {
  const { dir } = await sharedRun();
  const flags = ["--prompt", "ROMEO:", "--max-new-tokens", "40", "--temperature", "0"];
  const packed = await runCli(["generate", "--out-dir", dir, "--backend", "cpu", ...flags]);
  strictEqual(packed.code, 0, packed.stderr);
  ok(packed.stderr.includes(`inference: packed ternary weights from ${dir}/ckpt.ternary`));
  const latent = await runCli([
    ...["generate", "--out-dir", dir, "--backend", "cpu", "--ternary", "false", ...flags],
  ]);
  ok(latent.stderr.includes("inference: fake-quantised latent weights (--ternary false)"));
  strictEqual(packed.stdout, latent.stdout);
  // Without the file, generate packs the latent weights at load: same text again.
  const copy = await copyDir(dir);
  tempDirs.push(copy);
  await Deno.remove(`${copy}/ckpt.ternary.safetensors`);
  const atLoad = await runCli(["generate", "--out-dir", copy, "--backend", "cpu", ...flags]);
  strictEqual(atLoad.code, 0, atLoad.stderr);
  ok(atLoad.stderr.includes("inference: packed ternary weights, quantised at load (no "));
  strictEqual(atLoad.stdout, packed.stdout);
});

Deno.test("train --resume continues from the saved iteration", async () => {
  const { dir } = await sharedRun();
  const copy = await copyDir(dir);
  tempDirs.push(copy);
  // A config.json written before the flags took the library's names says "lr": still ours.
  const saved = JSON.parse(await Deno.readTextFile(`${copy}/config.json`));
  const { learningRate, ...rest } = saved;
  ok(learningRate > 0);
  await Deno.writeTextFile(`${copy}/config.json`, JSON.stringify({ ...rest, lr: 2e-3 }));
  const r = await runCli([
    ...["train", "--resume", "--out-dir", copy, "--backend", "cpu"],
    ...["--max-iters", "70", "--lr-decay-iters", "70"],
  ]);
  strictEqual(r.code, 0, r.stderr);
  ok(r.stdout.includes(`resuming from ${copy}/last.safetensors`), r.stdout);
  ok(/^resuming at iteration 60 of 70$/m.test(r.stdout), r.stdout);
  deepStrictEqual(evalLines(r.stdout).map((e) => e.iter), [60, 69]);
  ok(/^done: 10 iterations/m.test(r.stdout), r.stdout);
  // The saved flags were kept (the dataset path, the preset's sizes), the new ones applied.
  const cfg = JSON.parse(await Deno.readTextFile(`${copy}/config.json`));
  strictEqual(cfg.maxIters, 70);
  strictEqual(cfg.tokenizer, "char");
  strictEqual(cfg.learningRate, 2e-3);
  ok(!("lr" in cfg));
  const last = loadCheckpoint(await Deno.readFile(`${copy}/last.safetensors`));
  strictEqual(last.iteration, 70);
  last.model.dispose();
  // The metrics history runs on from the first run.
  const evals = parseMetrics(await Deno.readTextFile(`${copy}/metrics.jsonl`))
    .filter((m) => m.type === "eval").map((m) => m.iter);
  deepStrictEqual(evals, [0, 30, 59, 60, 69]);
  // Changing the architecture of a resumed run is refused.
  const bad = await runCli(["train", "--resume", "--out-dir", copy, "--n-embd", "64"]);
  strictEqual(bad.code, 2);
  ok(/^error: --n-embd 64 does not match the checkpoint/.test(bad.stderr), bad.stderr);
});

Deno.test("train: Ctrl-C (SIGINT) saves a loadable, resumable checkpoint and exits", async () => {
  const dir = await tempDir();
  const dataset = await writeSlice(dir);
  const out = `${dir}/out`;
  const args = nanoFlags(dataset, out).map((a) => (a === "60" ? "100000" : a));
  const child = cliCommand(["train", ...args]).spawn();
  // Wait for the first evaluation's checkpoint, then interrupt.
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  while (!stdout.includes("saved ")) {
    const { value, done } = await reader.read();
    if (done) break;
    stdout += value;
  }
  await new Promise((r) => setTimeout(r, 500));
  child.kill("SIGINT");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    stdout += value;
  }
  const status = await child.status;
  const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  strictEqual(status.code, 130, stderr);
  const m = stdout.match(/^interrupted at iteration (\d+); saved (.*last\.safetensors)/m);
  ok(m, stdout);
  ok(stderr.includes("interrupt (SIGINT): finishing this step, then saving a checkpoint"), stderr);
  const ckpt = loadCheckpoint(await Deno.readFile(m[2]));
  strictEqual(ckpt.iteration, Number(m[1]));
  ok(ckpt.optimizer !== null && ckpt.rng !== null, "the checkpoint must be resumable");
  ckpt.model.dispose();
});

Deno.test("generate --chat answers two piped turns", async () => {
  const { dir } = await sharedRun();
  const r = await runCli(
    ["generate", "--out-dir", dir, "--backend", "cpu", "--chat", "--max-new-tokens", "40"],
    "ROMEO:\nJULIET:\n/exit\nnot read\n",
  );
  strictEqual(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  const turns = lines.flatMap((l, i) => (l.startsWith("> ") ? [i] : []));
  deepStrictEqual(turns.map((i) => lines[i]), ["> ROMEO:", "> JULIET:"]);
  // Each turn is followed by a non-empty reply before the next prompt.
  const reply1 = lines.slice(turns[0] + 1, turns[1]).join("\n");
  const reply2 = lines.slice(turns[1] + 1).join("\n");
  ok(reply1.trim().length > 0 && reply2.trim().length > 0, r.stdout);
  ok(!r.stdout.includes("not read"));
  // /reset clears the conversation.
  const reset = await runCli(
    ["generate", "--out-dir", dir, "--backend", "cpu", "--chat", "--max-new-tokens", "5"],
    "ROMEO:\n/reset\n",
  );
  ok(reset.stdout.includes("(conversation cleared)"), reset.stdout);
});

Deno.test("generate: one-line errors for a missing, corrupt or mismatched checkpoint", async () => {
  const dir = await tempDir();
  const missing = await runCli(["generate", "--out-dir", dir, "--backend", "cpu"]);
  strictEqual(missing.code, 1);
  ok(/^error: no checkpoint in '.*' \(looked for ckpt\.safetensors/.test(missing.stderr));
  strictEqual(missing.stderr.trim().split("\n").length, 1, missing.stderr);

  await Deno.writeFile(`${dir}/ckpt.safetensors`, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
  const corrupt = await runCli(["generate", "--out-dir", dir, "--backend", "cpu"]);
  strictEqual(corrupt.code, 1);
  ok(/^error: '.*ckpt\.safetensors' is not a usable checkpoint \(/.test(corrupt.stderr));
  strictEqual(corrupt.stderr.trim().split("\n").length, 1, corrupt.stderr);

  // A char vocabulary larger than the model's embedding: a tokenizer mismatch.
  const { dir: trained } = await sharedRun();
  const { tensors, metadata } = readSafetensors(await Deno.readFile(`${trained}/ckpt.safetensors`));
  const chars = Array.from({ length: 100 }, (_, i) => String.fromCodePoint(0x4e00 + i));
  metadata.tokenizer = JSON.stringify({ kind: "char", chars });
  await Deno.writeFile(`${dir}/ckpt.safetensors`, writeSafetensors(tensors, metadata));
  const mismatch = await runCli(["generate", "--out-dir", dir, "--backend", "cpu"]);
  strictEqual(mismatch.code, 1);
  ok(/^error: .*tokenizer mismatch: the char tokenizer has 100 tokens/.test(mismatch.stderr));

  // A prompt the char vocabulary cannot encode.
  const prompt = await runCli(
    ["generate", "--out-dir", trained, "--backend", "cpu", "--prompt", "日本"],
  );
  strictEqual(prompt.code, 1);
  ok(/^error: char tokenizer: character '日'/.test(prompt.stderr), prompt.stderr);
});

Deno.test("cli: bad flags, unknown commands and --help", async () => {
  const bad = await runCli(["train", "--n-embd", "100", "--n-head", "3"]);
  strictEqual(bad.code, 2);
  strictEqual(bad.stderr, "error: --n-embd (100) must be divisible by --n-head (3)\n");
  strictEqual(bad.stdout, "");
  const topk = await runCli(["generate", "--top-k", "0"]);
  strictEqual(topk.stderr, "error: --top-k: must be at least 1, got 0\n");
  const cmd = await runCli(["serve"]);
  strictEqual(cmd.code, 2);
  ok(cmd.stderr.startsWith("error: unknown command 'serve'"));
  const help = await runCli(["train", "--help"]);
  strictEqual(help.code, 0);
  ok(help.stdout.includes("--batch-size N") && /^ {2}baby {2,}nanoGPT's CPU/m.test(help.stdout));
  const preset = await runCli(["train", "--preset", "huge"]);
  ok(/^error: --preset: unknown preset 'huge' \(known: nano, baby/.test(preset.stderr));
  const data = await runCli(["train", "--dataset", "/no/such/file.txt", "--backend", "cpu"]);
  strictEqual(data.code, 1);
  ok(/^error: dataset '\/no\/such\/file.txt' not found/.test(data.stderr), data.stderr);
});

Deno.test("train: a non-finite loss stops the run, naming the iteration, keeping the checkpoint", async () => {
  const dir = await tempDir();
  const dataset = await writeSlice(dir);
  const out = `${dir}/out`;
  const r = await runCli([
    ...["train", "--model", "gpt", "--preset", "nano", "--tokenizer", "char", "--dataset", dataset],
    ...["--out-dir", out, "--backend", "cpu", "--max-iters", "200", "--eval-interval", "100"],
    ...["--eval-iters", "2", "--log-interval", "1", "--lr", "1e4", "--min-lr", "1"],
    ...["--decay-lr", "false", "--grad-clip", "0"],
  ]);
  strictEqual(r.code, 1, r.stderr);
  const m = r.stderr.match(
    /^error: stopping: the training loss is (NaN|Infinity|-Infinity) at iteration (\d+);/m,
  );
  ok(m, r.stderr);
  ok(Number(m[2]) > 0 && Number(m[2]) < 100, m[2]);
  // The checkpoints of the evaluation at step 0 are still there and load: nothing was written
  // after the divergence (the rolling last.safetensors is the eval's too).
  for (const file of ["ckpt.safetensors", "last.safetensors"]) {
    const ckpt = loadCheckpoint(await Deno.readFile(`${out}/${file}`));
    strictEqual(ckpt.kind, "gpt");
    strictEqual(ckpt.iteration, 0, `${file}: a diverged run must not overwrite the checkpoints`);
    ckpt.model.dispose();
  }
});
