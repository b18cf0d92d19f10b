// `generate --chat`: the original's TODO "chat style inference". Each input line is appended to
// the conversation and the model's reply is streamed until a blank line, an end-of-text token
// or --max-new-tokens. The conversation stays in the KV cache between turns (only the new
// tokens are run), and is cropped to the block size when it grows too long. `/reset` clears it,
// `/exit` (or the end of input) quits; piped input works and is echoed as `> line`.

import { Generator } from "../engine/random.ts";
import { keep, tidy } from "../engine/scope.ts";
import { contiguous, narrow } from "../kernels/mod.ts";
import { TokenizerError } from "../data/errors.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import type { KVCache } from "../nn/attention.ts";
import { generateStream } from "../models/generate.ts";
import type { LanguageModel } from "../models/model.ts";
import type { GenerateConfig } from "./flags.ts";
import { type Output, samplingOptions, StreamDecoder } from "./generate.ts";

/** Lines of a byte stream (without their line ends); a last line without "\n" counts. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  const decoder = new TextDecoder();
  for await (const bytes of stream) {
    buf += decoder.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
    }
  }
  buf += decoder.decode();
  if (buf !== "") yield buf.replace(/\r$/, "");
}

/** Keep only the first `n` cached positions (the tokens the conversation kept). */
export function truncateCache(cache: KVCache, n: number): void {
  if (cache.length <= n) return;
  if (n === 0) return cache.reset();
  for (const layer of cache.layers) {
    const [k, v] = tidy(
      () => [contiguous(narrow(layer.k!, 2, 0, n)), contiguous(narrow(layer.v!, 2, 0, n))],
    );
    layer.reset();
    layer.k = keep(k);
    layer.v = keep(v);
  }
}

/** Prints a reply as it streams: leading newlines dropped, a line end printed only when followed. */
class ReplyPrinter {
  #text = "";
  #heldNewlines = 0;
  constructor(readonly out: Output) {}
  /** Add decoded text; returns true when the reply just reached a blank line. */
  add(piece: string): boolean {
    for (const ch of piece) {
      if (ch === "\n") {
        if (this.#text === "") continue; // a newline before any text: not a blank line yet
        if (++this.#heldNewlines >= 2) return true;
      } else {
        this.out.write("\n".repeat(this.#heldNewlines) + ch);
        this.#heldNewlines = 0;
        this.#text += ch;
      }
    }
    return false;
  }
  /** End the reply's line. */
  end(): void {
    this.out.write("\n");
  }
}

/** Generate one reply after `context` (extended in place with the kept reply tokens). */
async function reply(
  model: LanguageModel,
  tok: Tokenizer,
  c: GenerateConfig,
  context: number[],
  cache: KVCache,
  gen: Generator,
  out: Output,
): Promise<void> {
  const printer = new ReplyPrinter(out);
  const dec = new StreamDecoder(tok);
  const stream = generateStream(model, context, {
    maxNewTokens: c.maxNewTokens,
    ...samplingOptions(c, model, gen),
    cache,
  });
  outer: for await (const chunk of stream) {
    for (const id of chunk[0]) {
      if (tok.eotToken !== undefined && id === tok.eotToken) break outer;
      context.push(id);
      if (printer.add(dec.push([id]))) break outer;
    }
  }
  printer.add(dec.flush());
  printer.end();
  // The device ran ahead of the stop by up to a chunk: drop those positions from the cache.
  truncateCache(cache, context.length);
}

/** Crop the conversation from the left so that a reply of `reserve` tokens fits the block. */
function crop(context: number[], blockSize: number, reserve: number, cache: KVCache): void {
  if (context.length + reserve <= blockSize) return;
  context.splice(0, context.length - Math.max(1, blockSize - reserve));
  cache.reset(); // positions shifted: cached keys no longer line up
}

/** Run the chat loop on `input` (default stdin); returns the exit code. */
export async function runChat(
  model: LanguageModel,
  tok: Tokenizer,
  c: GenerateConfig,
  out: Output,
  input: ReadableStream<Uint8Array> = Deno.stdin.readable,
  interactive: boolean = Deno.stdin.isTerminal(),
): Promise<number> {
  const { blockSize } = model.config;
  const reserve = Math.min(c.maxNewTokens, Math.floor(blockSize / 2));
  const gen = new Generator(c.seed);
  const cache = model.newCache();
  const start = (): number[] => (c.prompt === "" ? [] : Array.from(tok.encode(c.prompt)));
  let context = start();
  console.error("chat: type a line and press Enter; /reset clears the conversation, /exit quits");
  const lines = readLines(input);
  try {
    while (!out.closed) {
      if (interactive) out.write("> ");
      const next = await lines.next();
      if (next.done) break;
      const line = next.value;
      if (line.trim() === "/exit") break;
      if (line.trim() === "/reset") {
        context = start();
        cache.reset();
        out.write("(conversation cleared)\n");
        continue;
      }
      if (!interactive) out.write(`> ${line}\n`);
      let ids: Int32Array;
      try {
        ids = tok.encode(line + "\n");
      } catch (e) {
        if (!(e instanceof TokenizerError)) throw e;
        out.write(`(cannot encode that line: ${e.message})\n`);
        continue;
      }
      context.push(...ids);
      crop(context, blockSize, reserve, cache);
      await reply(model, tok, c, context, cache, gen, out);
    }
  } finally {
    cache.reset();
    await lines.return(undefined);
  }
  return 0;
}
