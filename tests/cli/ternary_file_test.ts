// The packed ternary file beside a BitGPT checkpoint is used only when it was packed from that
// very checkpoint (its SHA-256) and holds valid contents (issue 14: a NaN weight_scale used to
// be turned silently into a working model). Otherwise generate ignores it, saying why.

import { ok, strictEqual } from "node:assert/strict";
import { Generator } from "../../engine/random.ts";
import { saveCheckpoint } from "../../models/checkpoint.ts";
import { makeConfig } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";
import { sha256Hex } from "../../cli/checkpoints.ts";
import { ternaryPathOf, useTernaryFile, writeTernaryFile } from "../../cli/ternary_file.ts";
import { cpu } from "../util.ts";

Deno.test("ternary file: used only for its own checkpoint and with valid contents", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_ternary_" });
  const cfg = makeConfig({ vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 16 });
  const model = createModel("bitgpt", cfg, { backend: cpu, generator: new Generator(2) });
  const ckpt = `${dir}/ckpt.safetensors`;
  const bytes = await saveCheckpoint(model, { iteration: 5 });
  await Deno.writeFile(ckpt, bytes);
  const sha = await sha256Hex(bytes);
  strictEqual(await writeTernaryFile(model, ckpt, 5, sha), ternaryPathOf(ckpt));
  const good = await useTernaryFile(model, ckpt, 5, sha);
  strictEqual(good.path, ternaryPathOf(ckpt), good.reason);
  good.dispose();
  // Another checkpoint at the same iteration: not this file's.
  const other = await useTernaryFile(model, ckpt, 5, "0".repeat(64));
  ok(other.path === null && /packed from another checkpoint/.test(other.reason!), other.reason);
  // Damaged contents, bound to the right checkpoint all the same.
  const { tensors, metadata } = readSafetensors(await Deno.readFile(ternaryPathOf(ckpt)));
  const name = "transformer.h.0.attn.q_proj";
  const edits: [string, (t: typeof tensors) => void, RegExp][] = [
    ["scale NaN", (t) => (t[`${name}.weight_scale`].data = new Float32Array([NaN])), /holds NaN/],
    ["scale 0", (t) => (t[`${name}.weight_scale`].data = new Float32Array([0])), /not > 0/],
    [
      "norm Inf",
      (t) => (t[`${name}.norm.weight`].data = new Float32Array(16).fill(Infinity)),
      /holds Infinity/,
    ],
    [
      "code 0b11",
      (
        t,
      ) => (t[`${name}.weight_packed`].data = new Uint32Array(
        t[`${name}.weight_packed`].data.length,
      ).fill(3)),
      /code 0b11/,
    ],
    ["extra", (t) => (t.extra = t[`${name}.weight_scale`]), /unexpected tensor extra/],
    [
      "missing",
      (t) => delete t[`${name}.norm.weight`],
      /no transformer\.h\.0\.attn\.q_proj\.norm\.weight/,
    ],
  ];
  for (const [what, edit, pattern] of edits) {
    const t = structuredClone(tensors);
    edit(t);
    await Deno.writeFile(ternaryPathOf(ckpt), writeSafetensors(t, metadata));
    const use = await useTernaryFile(model, ckpt, 5, sha);
    ok(
      use.path === null && /is damaged/.test(use.reason!) && pattern.test(use.reason!),
      `${what}: ${use.reason}`,
    );
  }
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});
