// What `generate` writes is safe (issue 14): control characters a checkpoint's vocabulary holds
// are escaped when stdout is a terminal (and left alone in a pipe); chat takes a line of any
// length (150,000 characters used to overflow the stack in `context.push(...ids)`).

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Generator } from "../../engine/random.ts";
import { CharTokenizer } from "../../data/tokenizer.ts";
import { makeConfig } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { readLines, runChat } from "../../cli/chat.ts";
import { escapeControls, Output } from "../../cli/generate.ts";
import { GENERATE_DEFAULTS } from "../../cli/flags.ts";
import { cpu } from "../util.ts";

function sink(terminal: boolean) {
  const written: string[] = [];
  const file = {
    writeSync(p: Uint8Array) {
      written.push(new TextDecoder().decode(p));
      return p.length;
    },
    isTerminal: () => terminal,
  };
  return { file, text: () => written.join("") };
}

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const s of chunks) c.enqueue(enc.encode(s));
      c.close();
    },
  });
}

Deno.test("generate output: control characters are escaped on a terminal, kept in a pipe", () => {
  const hostile = "ok\x1b]52;c;cHduZWQ=\x07 \x1b[2J\r\x9b31m\x7f\ttab\nline";
  strictEqual(
    escapeControls(hostile),
    "ok\\x1b]52;c;cHduZWQ=\\x07 \\x1b[2J\\x0d\\x9b31m\\x7f\ttab\nline",
  );
  const tty = sink(true);
  new Output(tty.file).write(hostile);
  ok(![...tty.text()].some((c) => /\p{Cc}/u.test(c) && c !== "\n" && c !== "\t"), tty.text());
  const pipe = sink(false);
  new Output(pipe.file).write(hostile);
  strictEqual(pipe.text(), hostile);
  strictEqual(escapeControls("héllo 日本 🙂"), "héllo 日本 🙂");
});

Deno.test("chat: a 150,000-character line is taken, cropped to its tail, and answered", async () => {
  const config = makeConfig({ vocabSize: 6, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 8 });
  const model = createModel("gpt", config, { backend: cpu, generator: new Generator(2) });
  const tok = new CharTokenizer(["\n", " ", "a", "b", "c", "d"]);
  const out = sink(false);
  const line = "abcd ".repeat(30_000);
  const input = streamOf([line.slice(0, 70_000), line.slice(70_000) + "\n", "ab\n", "/exit\n"]);
  const c = { ...GENERATE_DEFAULTS, chat: true, maxNewTokens: 4, seed: 1 };
  strictEqual(await runChat(model, tok, c, new Output(out.file), input, false), 0);
  const text = out.text();
  ok(text.includes("(a long line: its first 145904 characters were dropped)"), text.slice(0, 300));
  ok(text.includes("> ab\n"), text.slice(-200));
  model.dispose();
  // readLines keeps the tail of long lines (never splitting a surrogate pair) and whole short ones.
  const lines: string[] = [];
  for await (const l of readLines(streamOf(["x".repeat(10), "🙂🙂\nshort\n"]), 5)) lines.push(l);
  deepStrictEqual(lines, ["x🙂🙂", "short"]);
});
