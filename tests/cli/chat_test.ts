// The pieces of `generate --chat` that run in-process: line splitting of piped input, cropping
// the KV cache back to the kept conversation (the device runs ahead of a stop by up to a chunk),
// and a whole chat over a stream with /reset and /exit on a tiny untrained model.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { fromArray } from "../../engine/creation.ts";
import { noGrad } from "../../engine/autograd.ts";
import { Generator } from "../../engine/random.ts";
import { CharTokenizer } from "../../data/tokenizer.ts";
import { makeConfig } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { readLines, runChat } from "../../cli/chat.ts";
import { Output } from "../../cli/generate.ts";
import { GENERATE_DEFAULTS } from "../../cli/generate_flags.ts";
import { assertClose, cpu } from "../util.ts";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const s of chunks) c.enqueue(enc.encode(s));
      c.close();
    },
  });
}

async function collect(it: AsyncGenerator<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of it) out.push(l);
  return out;
}

Deno.test("chat: readLines splits across chunks, strips CR, keeps a last unterminated line", async () => {
  deepStrictEqual(await collect(readLines(streamOf(["ab", "c\nde", "f\r\n\n", "g"]))), [
    "abc",
    "def",
    "",
    "g",
  ]);
  // A multi-byte character split between chunks survives.
  const bytes = new TextEncoder().encode("é\n");
  const split = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(bytes.subarray(0, 1));
      c.enqueue(bytes.subarray(1));
      c.close();
    },
  });
  deepStrictEqual(await collect(readLines(split)), ["é"]);
});

const tinyConfig = makeConfig({ vocabSize: 12, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 8 });

Deno.test("chat: KVCache.truncate keeps a prefix that continues exactly like a fresh cache", async () => {
  const model = createModel("gpt", tinyConfig, { backend: cpu, generator: new Generator(3) });
  model.eval();
  const ids = (xs: number[]) =>
    fromArray(Int32Array.from(xs), [1, xs.length], { backend: cpu, dtype: "i32" });
  const seq = [1, 5, 2, 7, 3, 3, 9, 0, 4, 6];
  const cache = model.newCache();
  noGrad(() => model.forward(ids(seq), null, { cache }).logits.dispose());
  strictEqual(cache.length, 10);
  cache.truncate(6);
  strictEqual(cache.length, 6);
  const next = [8, 1, 2];
  const viaCache = noGrad(() => model.forward(ids(next), null, { cache }).logits);
  const fresh = noGrad(() => model.forward(ids([...seq.slice(0, 6), ...next])).logits);
  const all = await fresh.data();
  const V = tinyConfig.vocabSize;
  assertClose(await viaCache.data(), all.subarray(6 * V), { atol: 1e-5, rtol: 1e-5 });
  cache.truncate(0);
  strictEqual(cache.length, 0);
  model.dispose();
});

Deno.test("chat: two turns, /reset and /exit over a piped stream", async () => {
  const model = createModel("bitgpt", tinyConfig, { backend: cpu, generator: new Generator(4) });
  const tok = new CharTokenizer(["\n", " ", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
  const written: string[] = [];
  const out = new Output({
    writeSync(p: Uint8Array) {
      written.push(new TextDecoder().decode(p));
      return p.length;
    },
  });
  const config = { ...GENERATE_DEFAULTS, chat: true, maxNewTokens: 12, seed: 1 };
  const input = streamOf(["abc\n", "ded\n/reset\nxyz\ncab\n/exit\nnot read\n"]);
  strictEqual(await runChat(model, tok, config, out, input, false), 0);
  const text = written.join("");
  const echoed = text.split("\n").filter((l) => l.startsWith("> "));
  deepStrictEqual(echoed, ["> abc", "> ded", "> xyz", "> cab"]);
  ok(text.includes("(conversation cleared)"));
  ok(text.includes("(cannot encode that line: char tokenizer: character 'x'"), text);
  ok(!text.includes("not read"));
  // Each encodable turn got a reply of at most 12 characters on its own line(s).
  for (const turn of ["> abc\n", "> ded\n", "> cab\n"]) {
    const after = text.slice(text.indexOf(turn) + turn.length);
    const reply = after.slice(0, after.search(/\n(> |\(conv)|$/));
    ok(reply.replaceAll("\n", "").length <= 12, `reply too long: ${JSON.stringify(reply)}`);
  }
  model.dispose();
});
