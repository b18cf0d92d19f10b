// tools/torch_interop.py: a GPT checkpoint of ours goes to nanoGPT's ckpt.pt and back, a BitGPT
// one to the original project's PyTorch layout and back, both exactly (weights, AdamW moments,
// step, config, tokenizer). Where a nanoGPT checkout is named by NANOGPT_DIR, nanoGPT's GPT
// loads the file strictly, its loss on a batch equals ours, configure_optimizers + load_state_dict
// give every parameter its own moments, and train.py --init_from=resume continues the run, whose
// checkpoint comes back. Where the original BitGPT is named by BITGPT_TORCH_DIR (its checkout),
// its BitGPTLanguageModel loads ours and its loss is close (it quantises each head's weight with
// the head's own scale). A model whose MLP activation the PyTorch model lacks is refused. Needs
// Debian's python3-torch (/usr/bin/python3); skipped, saying so, elsewhere.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { cpuBackend, useBackend } from "../../engine/device.ts";
import { tensor } from "../../engine/creation.ts";
import { noGrad } from "../../engine/autograd.ts";
import { loadCheckpoint, saveCheckpoint } from "../../models/checkpoint.ts";
import type { GPTConfig, ModelKind } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { getPreset } from "../../models/presets.ts";
import { train } from "../../models/train.ts";
import { tokenBatches } from "../../data/sampler.ts";
import type { LanguageModel } from "../../models/model.ts";
import { readSafetensors } from "../../nn/safetensors.ts";

const PYTHON = "/usr/bin/python3";
const ROOT = new URL("../../", import.meta.url).pathname;
const TOOL = `${ROOT}tools/torch_interop.py`;

async function run(cmd: string, args: string[], cwd?: string) {
  try {
    const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
      .output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
  } catch (e) {
    return { code: -1, stdout: "", stderr: String(e) };
  }
}

const hasTorch = (await run(PYTHON, ["-c", "import torch"])).code === 0;
const NANOGPT_DIR = Deno.env.get("NANOGPT_DIR");
const BITGPT_TORCH_DIR = Deno.env.get("BITGPT_TORCH_DIR");
const NO_TORCH = "no python3-torch at /usr/bin/python3 (Debian: apt-get install python3-torch)";

/** The last line a python run printed, parsed as JSON. */
const lastJson = (out: string) => JSON.parse(out.trim().split("\n").pop()!);

async function python(args: string[], cwd?: string): Promise<string> {
  const r = await run(PYTHON, args, cwd);
  strictEqual(r.code, 0, `python3 ${args.slice(0, 2).join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const VOCAB = 65;
const TOKENIZER = JSON.stringify({
  kind: "char",
  chars: Array.from({ length: VOCAB }, (_, i) => String.fromCharCode(48 + i)),
});

/** Token ids with some structure (so a few steps move the loss), and a fixed [4, 32] batch. */
function ids(n: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = i % 7 === 0 ? (s >>> 16) % VOCAB : (out[i - 1] + 1) % VOCAB;
  }
  return out;
}
const BATCH = ids(4 * 33, 99);
const X = Array.from({ length: 4 }, (_, b) => [...BATCH.subarray(b * 33, b * 33 + 32)]);
const Y = Array.from({ length: 4 }, (_, b) => [...BATCH.subarray(b * 33 + 1, b * 33 + 33)]);

/** Our loss on the fixed batch, in eval mode. */
async function ourLoss(model: LanguageModel): Promise<number> {
  model.eval();
  const x = tensor(Int32Array.from(X.flat()), [4, 32], { dtype: "i32" });
  const y = tensor(Int32Array.from(Y.flat()), [4, 32], { dtype: "i32" });
  return await noGrad(() => model.forward(x, y).loss!).item();
}

/** A checkpoint of a nano `kind` model after 3 CPU training steps, in `dir`. */
async function trained(kind: ModelKind, dir: string): Promise<{ path: string; loss: number }> {
  await useBackend("cpu");
  const nano = getPreset("nano");
  const data = tokenBatches({ train: ids(4000, 1), val: ids(500, 2) });
  const r = await train({
    kind,
    config: { ...nano.model, vocabSize: VOCAB },
    data,
    tokenizer: TOKENIZER,
    train: { ...nano.train, maxIters: 3, evalInterval: 1000, evalIters: 1, learningRate: 3e-3 },
  });
  const path = `${dir}/ours.safetensors`;
  await Deno.writeFile(path, await r.checkpoint());
  const loss = await ourLoss(r.model);
  r.model.dispose();
  return { path, loss };
}

/** Both files hold the same tensors bit for bit and the same metadata that matters. */
async function assertSameCheckpoint(a: string, b: string): Promise<void> {
  const [x, y] = [readSafetensors(await Deno.readFile(a)), readSafetensors(await Deno.readFile(b))];
  deepStrictEqual(Object.keys(y.tensors).sort(), Object.keys(x.tensors).sort());
  for (const [k, t] of Object.entries(x.tensors)) {
    deepStrictEqual(y.tensors[k].shape, t.shape, k);
    ok(y.tensors[k].data.every((v, i) => Object.is(v, t.data[i])), `${k} differs`);
  }
  for (const k of ["format", "format_version", "model", "iteration", "tokenizer"]) {
    strictEqual(y.metadata[k], x.metadata[k], k);
  }
  for (const k of ["config", "optimizer"]) {
    deepStrictEqual(JSON.parse(y.metadata[k]), JSON.parse(x.metadata[k]), k);
  }
  strictEqual(Number(y.metadata.best_val_loss), Number(x.metadata.best_val_loss));
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_torch_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "torch_interop: GPT -> nanoGPT ckpt.pt -> ours is exact",
  ignore: !hasTorch, // see NO_TORCH
  fn: () =>
    withDir(async (dir) => {
      const { path } = await trained("gpt", dir);
      await python([TOOL, "to-nanogpt", path, `${dir}/ckpt.pt`]);
      await python([TOOL, "from-nanogpt", `${dir}/ckpt.pt`, `${dir}/back.safetensors`]);
      await assertSameCheckpoint(path, `${dir}/back.safetensors`);
      const back = loadCheckpoint(await Deno.readFile(`${dir}/back.safetensors`));
      strictEqual(back.iteration, 3);
      strictEqual(back.optimizer!.step, 3);
      back.model.dispose();
    }),
});

Deno.test({
  name: "torch_interop: a model whose MLP activation PyTorch's lacks is refused",
  ignore: !hasTorch, // see NO_TORCH
  fn: () =>
    withDir(async (dir) => {
      const config = { ...getPreset("nano").model, vocabSize: VOCAB, activation: "gelu_tanh" };
      const model = createModel("gpt", config as GPTConfig, { backend: cpuBackend() });
      await Deno.writeFile(`${dir}/tanh.safetensors`, await saveCheckpoint(model));
      model.dispose();
      const r = await run(PYTHON, [TOOL, "to-nanogpt", `${dir}/tanh.safetensors`, `${dir}/x.pt`]);
      strictEqual(r.code, 1, r.stderr);
      ok(
        r.stderr.includes("uses activation='gelu_tanh'; the PyTorch gpt has 'gelu' only"),
        r.stderr,
      );
    }),
});

Deno.test({
  name: "torch_interop: BitGPT -> the original's per-head layout -> ours is exact",
  ignore: !hasTorch,
  fn: () =>
    withDir(async (dir) => {
      const { path } = await trained("bitgpt", dir);
      await python([TOOL, "to-bitgpt", path, `${dir}/bitgpt.pt`]);
      await python([TOOL, "from-bitgpt", `${dir}/bitgpt.pt`, `${dir}/back.safetensors`]);
      await assertSameCheckpoint(path, `${dir}/back.safetensors`);
    }),
});

/** Load a converted file into the PyTorch model, report its loss and moment mismatches. */
const CHECK = (kind: "nanogpt" | "bitgpt", codeDir: string) => `
import json, sys, torch
sys.path.insert(0, ${JSON.stringify(`${ROOT}tools`)})
sys.path.insert(0, ${JSON.stringify(codeDir)})
import torch_interop as ti
ck = torch.load(sys.argv[1], map_location="cpu")
if ${JSON.stringify(kind)} == "nanogpt":
    from model import GPT, GPTConfig
    model = GPT(GPTConfig(**ck["model_args"]))
else:
    from bitgpt import BitGPTLanguageModel, BitGPTConfig
    model = BitGPTLanguageModel(BitGPTConfig(**ck["model_args"]))
model.load_state_dict(ck["model"])  # strict
model.eval()
x, y = torch.tensor(json.loads(sys.argv[2])), torch.tensor(json.loads(sys.argv[3]))
with torch.no_grad():
    _, loss = model(x, y)
g = ck["optimizer"]["param_groups"][0]
opt = model.configure_optimizers(g["weight_decay"], g["lr"], tuple(g["betas"]), "cpu")
opt.load_state_dict(ck["optimizer"])
# Each parameter's moments, by its own name, against the converter's table for that name.
tensors, meta = ti.read_safetensors(sys.argv[4])
c = json.loads(meta["config"])
pieces = ti.bitgpt_pieces(c) if ${JSON.stringify(kind)} == "bitgpt" else \\
    [(n, n, None) for n in ti.gpt_names(c)]
by_their = {t: (o, r) for o, t, r in pieces}
worst = 0.0
for name, p in model.named_parameters():
    o, rows = by_their[name]
    for k in ["exp_avg", "exp_avg_sq"]:
        want = ti.cut(tensors[f"optimizer.{o}.{k}"], rows)
        worst = max(worst, (opt.state[p][k] - want).abs().max().item())
print(json.dumps({"loss": loss.item(), "moments": worst}))
`;

Deno.test({
  name: "torch_interop: nanoGPT's GPT loads ours, matches our loss, and train.py resumes the run",
  ignore: !hasTorch || !NANOGPT_DIR, // NANOGPT_DIR: a nanoGPT checkout (model.py, train.py)
  fn: () =>
    withDir(async (dir) => {
      const { path, loss } = await trained("gpt", dir);
      await Deno.mkdir(`${dir}/out`);
      await python([TOOL, "to-nanogpt", path, `${dir}/out/ckpt.pt`]);
      const check = lastJson(
        await python([
          "-c",
          CHECK("nanogpt", NANOGPT_DIR!),
          `${dir}/out/ckpt.pt`,
          JSON.stringify(X),
          JSON.stringify(Y),
          path,
        ]),
      );
      ok(Math.abs(check.loss - loss) < 1e-5, `nanoGPT loss ${check.loss}, ours ${loss}`);
      strictEqual(check.moments, 0);
      // train.py resumes in a directory of its own (it reads configurator.py from the cwd).
      for (const f of ["train.py", "model.py", "configurator.py"]) {
        await Deno.copyFile(`${NANOGPT_DIR}/${f}`, `${dir}/${f}`);
      }
      await Deno.mkdir(`${dir}/data/synthetic`, { recursive: true });
      const bin = (a: Int32Array) => new Uint8Array(Uint16Array.from(a).buffer);
      await Deno.writeFile(`${dir}/data/synthetic/train.bin`, bin(ids(4000, 1)));
      await Deno.writeFile(`${dir}/data/synthetic/val.bin`, bin(ids(500, 2)));
      const out = await python([
        ...["train.py", "--init_from=resume", "--out_dir=out", "--dataset=synthetic"],
        ...[
          "--device=cpu",
          "--compile=False",
          "--dtype=float32",
          "--gradient_accumulation_steps=1",
        ],
        ...["--batch_size=4", "--block_size=32", "--max_iters=5", "--eval_interval=5"],
        ...["--eval_iters=2", "--log_interval=1", "--learning_rate=3e-3", "--warmup_iters=10"],
      ], dir);
      const steps = [...out.matchAll(/^iter (\d+): loss ([\d.]+)/gm)].map((m) => Number(m[1]));
      deepStrictEqual(steps, [3, 4, 5], out);
      await python([TOOL, "from-nanogpt", `${dir}/out/ckpt.pt`, `${dir}/back.safetensors`]);
      const back = loadCheckpoint(await Deno.readFile(`${dir}/back.safetensors`));
      strictEqual(back.iteration, 5);
      strictEqual(back.optimizer!.step, 5);
      back.model.dispose();
    }),
});

Deno.test({
  name: "torch_interop: the original BitGPT loads ours, with every head's moments, loss close",
  ignore: !hasTorch || !BITGPT_TORCH_DIR, // BITGPT_TORCH_DIR: github.com/bananya-ml/BitGPT
  fn: () =>
    withDir(async (dir) => {
      const { path, loss } = await trained("bitgpt", dir);
      await python([TOOL, "to-bitgpt", path, `${dir}/bitgpt.pt`]);
      const check = lastJson(
        await python([
          "-c",
          CHECK("bitgpt", `${BITGPT_TORCH_DIR}/bitgpt`),
          `${dir}/bitgpt.pt`,
          JSON.stringify(X),
          JSON.stringify(Y),
          path,
        ]),
      );
      // Per-head weight scales (theirs) against one per projection (ours): close, not equal.
      ok(Math.abs(check.loss - loss) < 0.01, `original BitGPT loss ${check.loss}, ours ${loss}`);
      strictEqual(check.moments, 0);
    }),
});

const skipped = !hasTorch ? [`all: ${NO_TORCH}`] : [
  ...(NANOGPT_DIR ? [] : ["nanoGPT's model and train.py: set NANOGPT_DIR to a nanoGPT checkout"]),
  ...(BITGPT_TORCH_DIR ? [] : [
    "the original BitGPT: set BITGPT_TORCH_DIR to a github.com/bananya-ml/BitGPT checkout",
  ]),
];
if (skipped.length) console.log(`torch_interop tests skipped: ${skipped.join("; ")}`);
