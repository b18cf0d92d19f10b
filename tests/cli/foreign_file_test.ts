// `generate` on a file without our metadata (a Hugging Face GPT-2 file as the run's checkpoint):
// refused in one line naming --n-head, since its shapes fit several head counts; with --n-head
// it loads (and then stops at the tokenizer: this tiny model's 40 ids are fewer than GPT-2's).

import { ok, strictEqual } from "node:assert/strict";
import { runCli } from "./cli_util.ts";

const FIXTURE = new URL("../models/fixtures/hf_gpt2_tiny/model.safetensors", import.meta.url);

Deno.test("generate: a file whose head count is unknown asks for --n-head, then loads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(FIXTURE, `${dir}/ckpt.safetensors`);
    const flags = ["generate", "--out-dir", dir, "--backend", "cpu", "--max-new-tokens", "2"];
    const refused = await runCli(flags);
    strictEqual(refused.code, 1, refused.stderr);
    ok(
      /^error: '.*ckpt\.safetensors': checkpoint: this Hugging Face GPT-2 file does not record its number of attention heads, .* give it: --n-head/
        .test(refused.stderr),
      refused.stderr,
    );
    strictEqual(refused.stderr.trim().split("\n").length, 1, refused.stderr);
    const loaded = await runCli([...flags, "--n-head", "2"]);
    strictEqual(loaded.code, 1, loaded.stderr);
    ok(
      /tokenizer mismatch: the gpt2 tokenizer has 50257 tokens/.test(loaded.stderr),
      loaded.stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
