// Tests for data/tokenizer.ts: char vocabulary building, round trips, JSON, errors; GPT-2 BPE
// ids, padding and decoding, and the 338,025-token count of tiny Shakespeare.

import assert from "node:assert/strict";
import { TokenizerError } from "../../data/errors.ts";
import {
  CharTokenizer,
  GPT2_EOT_TOKEN,
  Gpt2Tokenizer,
  makeTokenizer,
  tokenizerFromJSON,
} from "../../data/tokenizer.ts";
import { sharedFile } from "./util.ts";

const SHAKESPEARE = sharedFile("shakespeare.txt");

function throwsTokenizer(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof TokenizerError && pattern.test(e.message));
}

Deno.test("char tokenizer: sorted vocabulary, round trip and JSON", () => {
  const tok = CharTokenizer.fromText("hello world");
  assert.deepEqual(tok.chars, [" ", "d", "e", "h", "l", "o", "r", "w"]);
  assert.equal(tok.vocabSize, 8);
  const ids = tok.encode("world hello");
  assert.ok(ids instanceof Int32Array);
  assert.deepEqual([...ids], [7, 5, 6, 4, 1, 0, 3, 2, 4, 4, 5]);
  assert.equal(tok.decode(ids), "world hello");
  const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok)));
  assert.ok(back instanceof CharTokenizer);
  assert.deepEqual(back.chars, tok.chars);
  assert.deepEqual(back.encode("hello"), tok.encode("hello"));
});

Deno.test("char tokenizer: code point order as Python's sorted(), astral characters", () => {
  const tok = CharTokenizer.fromText("\u{1F600}\uFFFDa\u{1F600}é");
  assert.deepEqual(tok.chars, ["a", "é", "\uFFFD", "\u{1F600}"]);
  const ids = tok.encode("a\u{1F600}é");
  assert.deepEqual([...ids], [0, 3, 1]);
  assert.equal(tok.decode(ids), "a\u{1F600}é");
});

Deno.test("char tokenizer: errors name the character; padding ids decode to U+FFFD", () => {
  const tok = CharTokenizer.fromText("abc");
  throwsTokenizer(() => tok.encode("abcd"), /character 'd' \(U\+0064\) at offset 3 is not in/);
  throwsTokenizer(() => tok.encode("a\nb"), /character "\\n" \(U\+000A\) at offset 1/);
  assert.equal(tok.decode([0, 3, 2, 99]), "a\uFFFDc\uFFFD");
  throwsTokenizer(() => tok.decode([0, -1]), /cannot decode id -1 at position 1/);
  throwsTokenizer(() => tok.decode([1.5]), /cannot decode id 1.5/);
  throwsTokenizer(() => new CharTokenizer(["a", "a"]), /'a' \(U\+0061\) appears twice/);
  throwsTokenizer(() => new CharTokenizer(["ab"]), /entry 0 is "ab", not one character/);
  throwsTokenizer(() => CharTokenizer.fromText(""), /vocabulary is empty/);
  throwsTokenizer(() => CharTokenizer.fromJSON({ kind: "char" }), /expected \{"kind": "char"/);
  throwsTokenizer(() => tokenizerFromJSON({ kind: "wordpiece" }), /got "wordpiece"/);
});

Deno.test("gpt2 tokenizer: known ids, padded vocabulary, JSON", () => {
  const tok = new Gpt2Tokenizer();
  assert.equal(tok.vocabSize, 50304);
  assert.equal(tok.eotToken, GPT2_EOT_TOKEN);
  assert.deepEqual([...tok.encode("Hello, world")], [15496, 11, 995]);
  const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok)));
  assert.equal(back.kind, "gpt2");
  assert.equal(back.vocabSize, 50304);
  assert.equal(makeTokenizer("gpt2", "").vocabSize, 50304);
  throwsTokenizer(() => new Gpt2Tokenizer(50000), /vocabSize must be an integer >= 50257/);
});

Deno.test("gpt2 tokenizer: round trip of mixed scripts; <|endoftext|> in text is ordinary", () => {
  const tok = new Gpt2Tokenizer();
  const text = "héllo 😀 ’ — 日本語 ✓\n\n\tx  y\r\n";
  assert.equal(tok.decode(tok.encode(text)), text);
  const ids = tok.encode("a<|endoftext|>b");
  assert.ok(!ids.includes(GPT2_EOT_TOKEN));
  assert.equal(tok.decode(ids), "a<|endoftext|>b");
  assert.equal(tok.decode([GPT2_EOT_TOKEN]), "<|endoftext|>");
});

Deno.test("gpt2 tokenizer: padding ids, bad ids, characters split across tokens", () => {
  const tok = new Gpt2Tokenizer();
  assert.equal(tok.decode([15496, 50257, 50303]), "Hello\uFFFD\uFFFD");
  throwsTokenizer(() => tok.decode([50304]), /id 50304 at position 0 is past the vocabulary/);
  throwsTokenizer(() => tok.decode([-3]), /cannot decode id -3/);
  const quote = tok.encode(" ’"); // the quote's 3 UTF-8 bytes span two tokens
  assert.equal(quote.length, 2);
  // Half a character decodes to U+FFFD and leaves no state behind for the next call.
  assert.equal(tok.decode(quote.subarray(0, 1)), " \uFFFD");
  assert.equal(tok.decode([15496]), "Hello");
  const bytes = [...tok.decodeBytes(quote.subarray(0, 1)), ...tok.decodeBytes(quote.subarray(1))];
  assert.equal(new TextDecoder().decode(new Uint8Array(bytes)), " ’");
});

Deno.test({
  name: "gpt2 tokenizer: tiny Shakespeare is 338,025 tokens and decodes back exactly",
  ignore: SHAKESPEARE === null,
  fn: async () => {
    const text = await Deno.readTextFile(SHAKESPEARE!);
    const tok = new Gpt2Tokenizer();
    const ids = tok.encode(text);
    assert.equal(ids.length, 338025);
    assert.equal(tok.decode(ids), text);
  },
});

Deno.test({
  name: "char tokenizer: tiny Shakespeare has nanoGPT's 65 characters",
  ignore: SHAKESPEARE === null,
  fn: async () => {
    const text = await Deno.readTextFile(SHAKESPEARE!);
    const tok = CharTokenizer.fromText(text);
    assert.equal(tok.vocabSize, 65);
    assert.equal(
      tok.chars.join(""),
      "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    );
    assert.equal(tok.decode(tok.encode(text)), text);
  },
});
