// `generate --chat` on a model tuned with the chat template, in process on a tiny untrained model:
// --prompt becomes the system turn and each line a user turn (the text the tokenizer is asked to
// encode shows it), a line holding the char template's end marker is refused without ending the
// chat, and no reply prints the end marker.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { ChatTemplate, chatTemplateChars } from "../../data/chat_template.ts";
import { CharTokenizer } from "../../data/tokenizer.ts";
import { Generator } from "../../engine/random.ts";
import { makeConfig } from "../../models/config.ts";
import { createModel } from "../../models/model.ts";
import { runChat } from "../../cli/chat.ts";
import { Output } from "../../cli/generate.ts";
import { GENERATE_DEFAULTS } from "../../cli/generate_flags.ts";
import { cpu } from "../util.ts";

Deno.test("chat with the template: system and user turns, the end marker refused in a line", async () => {
  const tok = CharTokenizer.fromText("abcdefgh Be brief." + chatTemplateChars());
  const encoded: string[] = [];
  const spy = Object.assign(Object.create(tok), {
    encode(text: string) {
      encoded.push(text);
      return tok.encode(text);
    },
  }) as CharTokenizer;
  const template = new ChatTemplate(spy);
  encoded.length = 0; // the assistant header, encoded once when the template is made
  const config = makeConfig({
    vocabSize: tok.vocabSize,
    blockSize: 96,
    nLayer: 1,
    nHead: 2,
    nEmbd: 8,
  });
  const model = createModel("gpt", config, { backend: cpu, generator: new Generator(5) });
  const written: string[] = [];
  const out = new Output({
    writeSync(p: Uint8Array) {
      written.push(new TextDecoder().decode(p));
      return p.length;
    },
  });
  const c = { ...GENERATE_DEFAULTS, chat: true, maxNewTokens: 6, seed: 2, prompt: "Be brief." };
  const lines = ["abc", "d\u0003e", "/reset", "hg"].join("\n") + "\n";
  const input = new ReadableStream<Uint8Array>({
    start(ctl) {
      ctl.enqueue(new TextEncoder().encode(lines));
      ctl.close();
    },
  });
  strictEqual(await runChat(model, spy, c, out, input, false, template), 0);
  deepStrictEqual(encoded, [
    "### System:\nBe brief.\n\n",
    "### User:\nabc\n\n",
    "### System:\nBe brief.\n\n", // /reset starts again from the system turn
    "### User:\nhg\n\n",
  ]);
  const text = written.join("");
  ok(
    text.includes("> d\u0003e\n(cannot encode that line: chat template: the text holds U+0003"),
    text,
  );
  ok(text.includes("(conversation cleared)"), text);
  // Replies stop at the end marker or after 6 tokens; the marker itself is never printed.
  const replies = text.split("\n").filter((l) => !l.startsWith(">") && !l.startsWith("("));
  ok(replies.every((r) => [...r].length <= 6 && !r.includes("\u0003")), JSON.stringify(replies));
  model.dispose();
});
