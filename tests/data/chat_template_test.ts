// The chat template with both tokenizers: ids decode back to the template's text, the loss mask
// covers exactly the replies and their end markers, the pieces chat encodes one by one give the
// very ids training uses, and checkpoints record (and refuse unknown) template names.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  CHAR_END_MARKER,
  CHAT_TEMPLATE_NAME,
  type ChatMessage,
  ChatTemplate,
  chatTemplateChars,
  chatTemplateOf,
  GPT2_END_TEXT,
  renderChat,
  withChatTemplate,
} from "../../data/chat_template.ts";
import { DataError } from "../../data/errors.ts";
import {
  CharTokenizer,
  GPT2_EOT_TOKEN,
  Gpt2Tokenizer,
  type Tokenizer,
  tokenizerFromJSON,
} from "../../data/tokenizer.ts";

const CONVERSATION: ChatMessage[] = [
  { role: "system", content: "You answer sums." },
  { role: "user", content: "What is 3 plus 4?" },
  { role: "assistant", content: "7" },
  { role: "user", content: "And 10 plus 5?\nQuickly." },
  { role: "assistant", content: "15, I think.\n\nSure." },
];

const char = CharTokenizer.fromText(
  CONVERSATION.map((m) => m.content).join("") + chatTemplateChars(),
);
const bpe = new Gpt2Tokenizer();

Deno.test("chat template: the documented text, with the end marker after each reply", () => {
  strictEqual(
    renderChat(CONVERSATION.slice(0, 3)),
    "### System:\nYou answer sums.\n\n### User:\nWhat is 3 plus 4?\n\n### Assistant:\n7\u0003",
  );
  strictEqual(
    renderChat(CONVERSATION.slice(1, 3), GPT2_END_TEXT),
    "### User:\nWhat is 3 plus 4?\n\n### Assistant:\n7<|endoftext|>",
  );
});

for (
  const [name, tok, endText] of [
    ["char", char, CHAR_END_MARKER],
    ["gpt2", bpe, GPT2_END_TEXT],
  ] as [string, Tokenizer, string][]
) {
  Deno.test(`chat template (${name}): round trip, mask on replies and end markers only`, () => {
    const t = new ChatTemplate(tok);
    const { ids, mask } = t.encode(CONVERSATION);
    strictEqual(ids.length, mask.length);
    strictEqual(t.decode(ids), renderChat(CONVERSATION, endText));
    // The masked ids are the replies, each closed by the end marker.
    const runs: number[][] = [];
    mask.forEach((m, i) => {
      if (m && !mask[i - 1]) runs.push([]);
      if (m) runs.at(-1)!.push(ids[i]);
    });
    deepStrictEqual(runs.map((r) => tok.decode(r)), [
      "7" + endText,
      "15, I think.\n\nSure." + endText,
    ]);
    deepStrictEqual(runs.map((r) => r.at(-1)), [t.endId, t.endId]);
    strictEqual(ids.filter((id) => id === t.endId).length, 2); // nowhere else
    // Chat encodes turn by turn: the same ids as training's.
    const pieces = [
      ...t.turn("system", CONVERSATION[0].content),
      ...t.turn("user", CONVERSATION[1].content),
      ...t.assistantHeader(),
      ...t.reply("7"),
      ...t.turn("user", CONVERSATION[3].content),
      ...t.assistantHeader(),
    ];
    deepStrictEqual(Array.from(ids.subarray(0, pieces.length)), pieces);
  });
}

Deno.test("chat template: end ids, and what a char vocabulary must hold", () => {
  strictEqual(new ChatTemplate(bpe).endId, GPT2_EOT_TOKEN);
  const t = new ChatTemplate(char);
  strictEqual(t.endId, char.encode(CHAR_END_MARKER)[0]);
  throws(
    () => new ChatTemplate(CharTokenizer.fromText("abc \n")),
    /^DataError: chat template: the char vocabulary lacks '#' \(U\+0023\), 'S' \(U\+0053\)/,
  );
  // A char text holding the end marker would end a reply early: refused; gpt2 has no such char.
  throws(() => t.reply("7\u0003"), /holds U\+0003, the char template's end marker, at offset 1/);
  const withEnd = CharTokenizer.fromText(chatTemplateChars() + "x");
  throws(() => new ChatTemplate(withEnd).turn("user", "x\u0003"), DataError);
  // "<|endoftext|>" typed in a gpt2 text is ordinary text, not the end marker.
  ok(!new ChatTemplate(bpe).reply("<|endoftext|>").slice(0, -1).includes(GPT2_EOT_TOKEN));
});

Deno.test("chat template: checkpoints record its name in the tokenizer JSON", () => {
  for (const tok of [char, bpe]) {
    strictEqual(chatTemplateOf(tok.toJSON()), null);
    const json = withChatTemplate(tok.toJSON());
    strictEqual(chatTemplateOf(JSON.parse(JSON.stringify(json))), CHAT_TEMPLATE_NAME);
    // The tokenizer restores as before: the name is beside it, not in it.
    deepStrictEqual(tokenizerFromJSON(json).toJSON(), tok.toJSON());
  }
  throws(
    () => chatTemplateOf({ kind: "gpt2", chatTemplate: "chatml" }),
    /^DataError: chat template "chatml" is not known to this build .*; update bitgpt/,
  );
});
