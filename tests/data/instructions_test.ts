// Instruction data: JSONL records read and checked (each bad input its one-line message naming
// the file and line), the characters a char vocabulary must hold, the 90/10 split by record, and
// loadDataset routing a .jsonl file to them with either tokenizer.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { loadDataset } from "../../data/batches.ts";
import { CHAT_TEMPLATE_NAME, chatTemplateChars } from "../../data/chat_template.ts";
import { DataError } from "../../data/errors.ts";
import {
  checkCharsKnown,
  instructionText,
  parseInstructions,
  splitRecords,
} from "../../data/instructions.ts";
import { CharTokenizer, GPT2_EOT_TOKEN } from "../../data/tokenizer.ts";
import { withTempDir } from "./util.ts";

const pair = (p: string, r: string) => JSON.stringify({ prompt: p, response: r });

Deno.test("instructions: prompt/response and messages records, blank lines, CRLF, extra keys", () => {
  const text = [
    pair("What is 3 plus 4?", "7"),
    "",
    JSON.stringify({ prompt: "Hi", response: "Hello", system: "Be brief.", id: 7 }) + "\r",
    "   ",
    JSON.stringify({
      messages: [
        { role: "system", content: "S" },
        { role: "user", content: "u1" },
        { role: "assistant", content: "a1" },
        { role: "user", content: "u2" },
        { role: "assistant", content: "a2" },
      ],
      source: "x",
    }),
  ].join("\n");
  const recs = parseInstructions(text, "qa.jsonl");
  deepStrictEqual(recs.map((r) => r.line), [1, 3, 5]);
  deepStrictEqual(recs[0].messages, [
    { role: "user", content: "What is 3 plus 4?" },
    { role: "assistant", content: "7" },
  ]);
  deepStrictEqual(recs[1].messages.map((m) => m.role), ["system", "user", "assistant"]);
  strictEqual(recs[2].messages.length, 5);
  strictEqual(recs[2].messages[4].content, "a2");
});

Deno.test("instructions: each bad record is one DataError naming the file, the line and the problem", () => {
  const cases: [string, string][] = [
    [`{"prompt": "a", "response": "b"`, `line 2: not valid JSON (`],
    [
      `[1, 2]`,
      `line 2: expected an object with "prompt" and "response", or "messages"; got an array`,
    ],
    [
      `"text"`,
      `line 2: expected an object with "prompt" and "response", or "messages"; got a string`,
    ],
    [`null`, `got null`],
    [`{"question": "a", "answer": "b"}`, `line 2: missing "prompt" and "response"`],
    [`{"prompt": "a"}`, `line 2: missing "response"`],
    [`{"response": "b"}`, `line 2: missing "prompt"`],
    [`{"prompt": 3, "response": "b"}`, `line 2: "prompt" must be a string, got a number`],
    [`{"prompt": "a", "response": null}`, `line 2: "response" must be a string, got null`],
    [
      `{"prompt": "a", "response": "b", "system": ["x"]}`,
      `"system" must be a string, got an array`,
    ],
    [`{"prompt": "a", "response": ""}`, `line 2: "response" is empty`],
    [
      `{"prompt": "a", "response": "b", "messages": []}`,
      `give "messages" or "prompt" and "response", not both`,
    ],
    [`{"messages": "hi"}`, `line 2: "messages" must be an array, got a string`],
    [`{"messages": []}`, `line 2: "messages" is empty`],
    [`{"messages": [1]}`, `line 2: messages[0] must be an object, got a number`],
    [
      `{"messages": [{"role": "bot", "content": "x"}]}`,
      `messages[0].role must be "system", "user" or "assistant", got "bot"`,
    ],
    [`{"messages": [{"role": "user"}]}`, `messages[0].content must be a string, got a undefined`],
    [
      `{"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}]}`,
      `messages[1] is a system message; only the first may be`,
    ],
    [
      `{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]}`,
      `messages[1] is an empty assistant message`,
    ],
    [
      `{"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}`,
      `line 2: the last message must be the assistant's (only replies are trained on)`,
    ],
  ];
  for (const [line, want] of cases) {
    const text = pair("ok", "fine") + "\n" + line + "\n" + pair("never", "read");
    throws(() => parseInstructions(text, "qa.jsonl"), (e: Error) => {
      ok(e instanceof DataError, `${line}: ${e}`);
      ok(e.message.startsWith("'qa.jsonl' line 2: "), e.message);
      ok(e.message.includes(want), `${line}\n  got:  ${e.message}\n  want: ${want}`);
      ok(!e.message.includes("\n"), e.message);
      return true;
    });
  }
  throws(() => parseInstructions("\n  \n", "qa.jsonl"), /^DataError: 'qa\.jsonl' holds no records/);
});

Deno.test("instructions: a char vocabulary must hold the template's and the records' characters", () => {
  const recs = parseInstructions(pair("Ab", "cd") + "\n" + pair("x", "é"), "qa.jsonl");
  const text = instructionText(recs);
  ok(text.includes("Abcdxé") && text.endsWith(chatTemplateChars()));
  checkCharsKnown(CharTokenizer.fromText(text), recs, "qa.jsonl"); // complete: no error
  const plain = CharTokenizer.fromText("Abcdx é");
  throws(
    () => checkCharsKnown(plain, recs, "qa.jsonl"),
    (e: Error) => {
      strictEqual(
        e.message,
        `'qa.jsonl': the char vocabulary of 7 characters lacks 15 that the records need: the ` +
          `chat template's '#' (U+0023), 'S' (U+0053), 'y' (U+0079), 's' (U+0073), 't' ` +
          `(U+0074), 'e' (U+0065) and 9 more`,
      );
      return true;
    },
  );
  const almost = CharTokenizer.fromText(chatTemplateChars() + "Abcdx");
  throws(
    () => checkCharsKnown(almost, recs, "qa.jsonl"),
    /lacks 1 that the records need: line 2's 'é' \(U\+00E9\)$/,
  );
});

Deno.test("instructions: the split is 90/10 by record, in file order, at least one record each", () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => i);
  deepStrictEqual(splitRecords(ids(100)), { train: ids(90), val: ids(100).slice(90) });
  deepStrictEqual(splitRecords(ids(10)), { train: ids(9), val: [9] });
  deepStrictEqual(splitRecords(ids(2)), { train: [0], val: [1] });
  deepStrictEqual(splitRecords(ids(5)), { train: ids(4), val: [4] }); // floor(4.5) = 4
  throws(
    () => splitRecords(ids(1), 0.9, "qa.jsonl"),
    /^DataError: 'qa\.jsonl' has 1 record; training and validation need at least 2$/,
  );
  throws(() => splitRecords(ids(4), 1), /trainFraction must be in \(0, 1\)/);
});

Deno.test("instructions: loadDataset routes .jsonl files to instruction data, char and gpt2", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/qa.JSONL`;
    const qa = Array.from({ length: 20 }, (_, i) => [`What is ${i} plus 1?`, `${i + 1}`]);
    const lines = qa.map(([q, a]) => pair(q, a));
    await Deno.writeTextFile(path, lines.join("\n"));
    const char = await loadDataset({ dataset: path, tokenizer: "char" });
    ok("records" in char);
    strictEqual(char.records.train.length, 18);
    strictEqual(char.records.val.length, 2);
    deepStrictEqual(char.records.val.map((r) => r.line), [19, 20]);
    strictEqual(char.fromCache, false);
    strictEqual(char.template.name, CHAT_TEMPLATE_NAME);
    // The vocabulary: the records' characters and the template's.
    deepStrictEqual(
      char.tokenizer.toJSON(),
      CharTokenizer.fromText(qa.flat().join("") + chatTemplateChars()).toJSON(),
    );
    const n = char.records.train.reduce((s, r) => s + r.ids.length, 0);
    strictEqual(char.train.length, n);
    // The same vocabulary given back (as --resume and --init-from do) encodes the same ids.
    const again = await loadDataset({
      dataset: path,
      tokenizer: "char",
      charVocab: char.tokenizer.toJSON(),
    });
    ok("records" in again);
    deepStrictEqual(again.train, char.train);
    const bpe = await loadDataset({ dataset: path, tokenizer: "gpt2" });
    ok("records" in bpe);
    strictEqual(bpe.template.endId, GPT2_EOT_TOKEN);
    strictEqual(bpe.records.train[0].ids.at(-1), GPT2_EOT_TOKEN);
    // Bad files: empty, not UTF-8, not there.
    await Deno.writeTextFile(`${dir}/empty.jsonl`, "");
    await Deno.writeFile(`${dir}/latin1.jsonl`, new Uint8Array([0x7b, 0xe9, 0x7d]));
    for (
      const [name, want] of [
        ["empty.jsonl", /is empty/],
        ["latin1.jsonl", /is not valid UTF-8/],
        ["missing.jsonl", /not found/],
      ] as const
    ) {
      let err: unknown;
      await loadDataset({ dataset: `${dir}/${name}`, tokenizer: "char" }).catch((e) => (err = e));
      ok(err instanceof DataError && want.test(err.message), `${name}: ${err}`);
    }
  });
});
