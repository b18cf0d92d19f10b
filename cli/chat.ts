// `generate --chat`: the original's TODO "chat style inference". Each input line is appended to
// the conversation and the model's reply is streamed until a blank line, an end-of-text token
// or --max-new-tokens. A model tuned with the chat template (data/chat_template.ts) gets each
// line as a user turn followed by the assistant header, --prompt as the system message, and its
// reply ends at the template's end marker only (which closes the turn in the conversation, as
// in training). The conversation stays in the KV cache between turns (only the new tokens are
// run), and is cropped to the block size when it grows too long; a line of any length is taken
// (only its tail can matter). `/reset` clears it, `/exit` (or the end of input) quits; piped
// input works and is echoed as `> line`.

import { Generator } from "../engine/random.ts";
import type { ChatTemplate } from "../data/chat_template.ts";
import { DataError } from "../data/errors.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import type { KVCache } from "../nn/attention.ts";
import { fitContext, generateStream, type Turns } from "../models/generate.ts";
import type { LanguageModel } from "../models/model.ts";
import type { GenerateConfig } from "./generate_flags.ts";
import { type Output, samplingOptions, StreamDecoder } from "./generate.ts";

/** A line of input, possibly only its tail. */
export interface InputLine {
  /** The line (without its line end), or its last `maxChars` characters. */
  text: string;
  /** Characters dropped from the front of a longer line. */
  dropped: number;
}

/**
 * Lines of a byte stream (without their line ends); a last line without "\n" counts. A line
 * longer than `maxChars` keeps only its last `maxChars` characters, so that a line of any length
 * costs bounded memory and time.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  maxChars = Infinity,
): AsyncGenerator<string> {
  for await (const line of readLinesCropped(stream, maxChars)) yield line.text;
}

/** `readLines` with how much of each line was dropped. */
export async function* readLinesCropped(
  stream: ReadableStream<Uint8Array>,
  maxChars: number,
): AsyncGenerator<InputLine> {
  let buf = "";
  let dropped = 0;
  const decoder = new TextDecoder();
  const crop = () => {
    if (buf.length <= maxChars) return;
    let cut = buf.length - maxChars;
    if (/[\uDC00-\uDFFF]/.test(buf[cut])) cut++; // never start on the second half of a pair
    dropped += cut;
    buf = buf.slice(cut);
  };
  const line = (text: string): InputLine => ({ text: text.replace(/\r$/, ""), dropped });
  for await (const bytes of stream) {
    let text = decoder.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = text.indexOf("\n")) >= 0) { // search the new text only: linear in the input
      buf += text.slice(0, nl);
      crop();
      yield line(buf);
      [buf, dropped, text] = ["", 0, text.slice(nl + 1)];
    }
    buf += text;
    crop();
  }
  buf += decoder.decode();
  crop();
  if (buf !== "") yield line(buf);
}

/** Prints a reply as it streams: leading newlines dropped, a line end printed only when followed. */
class ReplyPrinter {
  #text = "";
  #heldNewlines = 0;
  /** `blankLineEnds`: a blank line ends the reply (a model without the chat template). */
  constructor(readonly out: Output, readonly blankLineEnds = true) {}
  /** Add decoded text; returns true when the reply just reached a blank line that ends it. */
  add(piece: string): boolean {
    for (const ch of piece) {
      if (ch === "\n") {
        if (this.#text === "") continue; // a newline before any text: not a blank line yet
        if (++this.#heldNewlines >= 2 && this.blankLineEnds) return true;
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

/**
 * Generate one reply after `context` (extended in place with the kept reply tokens, and with the
 * template's end marker when there is a template).
 */
async function reply(
  model: LanguageModel,
  tok: Tokenizer,
  c: GenerateConfig,
  context: number[],
  cache: KVCache,
  gen: Generator,
  out: Output,
  template: ChatTemplate | null,
): Promise<void> {
  const printer = new ReplyPrinter(out, template === null);
  const end = template?.endId ?? tok.eotToken;
  const dec = new StreamDecoder(tok);
  const stream = generateStream(model, context, {
    maxNewTokens: c.maxNewTokens,
    ...samplingOptions(c, model, gen),
    cache,
  });
  outer: for await (const chunk of stream) {
    for (const id of chunk[0]) {
      if (end !== undefined && id === end) break outer;
      context.push(id);
      if (printer.add(dec.push([id]))) break outer;
    }
  }
  printer.add(dec.flush());
  printer.end();
  // The device ran ahead of the stop by up to a chunk: drop those positions from the cache.
  cache.truncate(context.length);
  if (template) context.push(template.endId); // the turn ends as every reply in training does
}

/** The ids of an input line: as is, or as a user turn and the assistant header. */
function lineIds(tok: Tokenizer, template: ChatTemplate | null, line: string): Int32Array {
  if (!template) return tok.encode(line + "\n");
  const turn = template.turn("user", line);
  const header = template.assistantHeader();
  const ids = new Int32Array(turn.length + header.length);
  ids.set(turn);
  ids.set(header, turn.length);
  return ids;
}

/**
 * Run the chat loop on `input` (default stdin); returns the exit code. With `template` (a model
 * tuned with the chat template) lines are user turns and --prompt the system message.
 */
export async function runChat(
  model: LanguageModel,
  tok: Tokenizer,
  c: GenerateConfig,
  out: Output,
  input: ReadableStream<Uint8Array> = Deno.stdin.readable,
  interactive: boolean = Deno.stdin.isTerminal(),
  template: ChatTemplate | null = null,
): Promise<number> {
  const { blockSize } = model.config;
  const reserve = Math.min(c.maxNewTokens, Math.floor(blockSize / 2));
  const gen = new Generator(c.seed);
  const cache = model.newCache();
  const start = (): number[] =>
    c.prompt === ""
      ? []
      : Array.from(template ? template.turn("system", c.prompt) : tok.encode(c.prompt));
  let context = start();
  // Turns start at each input line; the system message (--prompt) stays while it can.
  let turns: Turns = { keep: context.length, starts: [] };
  console.error(
    template
      ? `chat: the model was tuned with the chat template ${template.name}: each line is a ` +
        `user turn${c.prompt === "" ? "" : ", --prompt the system message"}; /reset clears ` +
        `the conversation, /exit quits`
      : "chat: type a line and press Enter; /reset clears the conversation, /exit quits",
  );
  // Only the last blockSize tokens of a line can stay in the context: keep a generous tail of
  // characters (a character is at most 4 byte-level tokens; at least one).
  const lines = readLinesCropped(input, Math.max(4096, 4 * blockSize));
  try {
    while (!out.closed) {
      if (interactive) out.write("> ");
      const next = await lines.next();
      if (next.done) break;
      const { text: line, dropped } = next.value;
      if (line.trim() === "/exit") break;
      if (line.trim() === "/reset") {
        context = start();
        turns = { keep: context.length, starts: [] };
        cache.reset();
        out.write("(conversation cleared)\n");
        continue;
      }
      if (!interactive) out.write(`> ${dropped ? "…" : ""}${line}\n`);
      if (dropped) out.write(`(a long line: its first ${dropped} characters were dropped)\n`);
      let ids: Int32Array;
      try {
        ids = lineIds(tok, template, line);
      } catch (e) {
        if (!(e instanceof DataError)) throw e; // a TokenizerError, or the char end marker
        out.write(`(cannot encode that line: ${e.message})\n`);
        continue;
      }
      turns.starts.push(context.length);
      for (const id of ids) context.push(id); // not push(...ids): a long line overflows the stack
      fitContext(context, blockSize, reserve, cache, turns);
      await reply(model, tok, c, context, cache, gen, out, template);
    }
  } finally {
    cache.reset();
    await lines.return(undefined);
  }
  return 0;
}
