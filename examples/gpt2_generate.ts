// Load a GPT-2 safetensors file (Hugging Face layout, or nanoGPT names, or one of our
// checkpoints) and continue a prompt with the GPT-2 tokenizer, printing tokens as they arrive.
// A Hugging Face model's config.json, when it sits next to the file, gives the head count and
// the activation; --n-head gives the head count of a file without one.
//
//   deno run -A examples/gpt2_generate.ts model.safetensors ["prompt"] [--tokens 50]
//     [--temperature 0.8] [--top-k 40] [--seed 1] [--backend auto|webgpu|cpu] [--n-head N]
//
// GPT-2 small (124M): https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors

import { parseArgs } from "node:util";
import {
  type BackendChoice,
  configFromHf,
  describeDevice,
  generateStream,
  Gpt2Tokenizer,
  type GPTConfig,
  loadCheckpoint,
  useBackend,
} from "../mod.ts";

const { values: flags, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    tokens: { type: "string", default: "50" },
    temperature: { type: "string", default: "0.8" },
    "top-k": { type: "string", default: "40" },
    seed: { type: "string", default: "1" },
    backend: { type: "string", default: "auto" },
    "n-head": { type: "string" },
  },
});
const [path, prompt = "Hello, I'm a language model,"] = positionals;
if (!path) {
  console.error("usage: examples/gpt2_generate.ts model.safetensors [prompt] [--tokens 50]");
  Deno.exit(2);
}

/** What a Hugging Face config.json next to the weights says; nothing without one. */
async function hfConfigBeside(file: string): Promise<Partial<GPTConfig>> {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await Deno.readTextFile(file.replace(/[^/]*$/, "config.json")));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw e;
  }
  // A training run's config.json (our flags) sits next to our checkpoints: not an HF one.
  return "n_head" in json ? configFromHf(json) : {};
}

const backend = await useBackend(flags.backend as BackendChoice);
const config = await hfConfigBeside(path);
if (flags["n-head"]) config.nHead = Number(flags["n-head"]);
const ck = loadCheckpoint(await Deno.readFile(path), { backend, config });
const { nLayer, nHead, nEmbd, vocabSize } = ck.config;
console.error(`${ck.source} ${ck.kind}: ${nLayer} layers, ${nHead} heads, ${nEmbd} wide`);
console.error(`device: ${describeDevice()}`);

const tokenizer = new Gpt2Tokenizer(vocabSize);
await Deno.stdout.write(new TextEncoder().encode(prompt));
const stream = generateStream(ck.model, tokenizer.encode(prompt), {
  maxNewTokens: Number(flags.tokens),
  temperature: Number(flags.temperature),
  topK: Number(flags["top-k"]),
  seed: Number(flags.seed),
});
for await (const [row] of stream) await Deno.stdout.write(tokenizer.decodeBytes(row));
console.log();
