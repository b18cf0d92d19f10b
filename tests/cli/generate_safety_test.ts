// What `generate` writes is safe (issue 14): control characters a checkpoint's vocabulary holds
// are escaped when stdout is a terminal (and left alone in a pipe), in-process and through a
// pseudo-terminal; chat takes a line of any length (150,000 characters used to overflow the
// stack in `context.push(...ids)`), in-process and through the CLI.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Generator } from "../../engine/random.ts";
import { CharTokenizer } from "../../data/tokenizer.ts";
import { makeConfig } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { readLines, runChat } from "../../cli/chat.ts";
import { escapeControls, Output } from "../../cli/generate.ts";
import { GENERATE_DEFAULTS } from "../../cli/generate_flags.ts";
import { cpu } from "../util.ts";
import { readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";
import { copyDir, runCli, sharedRun } from "./cli_util.ts";
import { hasPty, PtyRun } from "./pty_util.ts";

let sharedDir: string | null = null;
globalThis.addEventListener("unload", () => {
  if (sharedDir) Deno.removeSync(sharedDir.replace(/\/out$/, ""), { recursive: true });
});

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

Deno.test({
  name: "generate: a vocabulary holding ESC prints it escaped in a terminal, raw in a pipe",
  ignore: !hasPty,
  async fn() {
    const { dir } = await sharedRun();
    sharedDir = dir;
    const copy = await copyDir(dir);
    const { tensors, metadata } = readSafetensors(await Deno.readFile(`${dir}/ckpt.safetensors`));
    const tok = JSON.parse(metadata.tokenizer);
    tok.chars = tok.chars.map((c: string) => (c === "e" ? "\x1b" : c));
    metadata.tokenizer = JSON.stringify(tok);
    await Deno.writeFile(`${copy}/ckpt.safetensors`, writeSafetensors(tensors, metadata));
    const flags = ["--out-dir", copy, "--backend", "cpu", "--max-new-tokens", "200", "--seed", "1"];
    const pipe = await runCli(["generate", ...flags, "--num-samples", "1"]);
    strictEqual(pipe.code, 0, pipe.stderr);
    ok(pipe.stdout.includes("\x1b"), "raw in a pipe");
    const tty = new PtyRun([
      Deno.execPath(),
      "task",
      "-q",
      "generate",
      ...flags,
      "--num-samples",
      "1",
    ]);
    strictEqual(await tty.finish(), 0, tty.text);
    ok(tty.text.includes("\\x1b"), tty.text);
    ok(!tty.text.includes("\x1b"), "no raw ESC reaches the terminal");
    await Deno.remove(copy, { recursive: true });
  },
});

Deno.test("generate --chat: a 150,000-character piped line is answered (no stack overflow)", async () => {
  const { dir } = await sharedRun();
  sharedDir = dir;
  const line = "ROMEO: ".repeat(150_000 / 7);
  const r = await runCli(
    ["generate", "--out-dir", dir, "--backend", "cpu", "--chat", "--max-new-tokens", "8"],
    `${line}\nJULIET:\n`,
  );
  strictEqual(r.code, 0, r.stderr);
  ok(r.stdout.includes("(a long line: its first"), r.stdout.slice(0, 200));
  ok(r.stdout.includes("> JULIET:"), r.stdout.slice(-300));
});
