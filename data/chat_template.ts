// The chat template instruction data is tuned with and `generate --chat` talks through: plain
// text headers for each turn and one end marker after each assistant reply, a single token with
// both tokenizers (GPT-2's <|endoftext|> id; for the char tokenizer the character U+0003, ASCII's
// "end of text", which the vocabulary of an instruction dataset always holds):
//
//   ### System:\n{system}\n\n        (optional, first)
//   ### User:\n{prompt}\n\n
//   ### Assistant:\n{response}<end>
//   ### User:\n…                     (further turns)
//
// Each system or user turn is encoded as one piece, the assistant header as another and the reply
// as a third, so training and chat produce the very same ids. Only a reply and its end marker
// carry loss. A tuned checkpoint records the template's name in its tokenizer JSON.

import { DataError } from "./errors.ts";
import type { Tokenizer, TokenizerJSON } from "./tokenizer.ts";

/** The template's name and version, as checkpoints record it. */
export const CHAT_TEMPLATE_NAME = "bitgpt-chat-1";

/** Who speaks in a turn. */
export type ChatRole = "system" | "user" | "assistant";

/** The roles, in the order a conversation may use them (system first, if at all). */
export const CHAT_ROLES: readonly ChatRole[] = ["system", "user", "assistant"];

/** One turn of a conversation. */
export interface ChatMessage {
  /** Who speaks. */
  role: ChatRole;
  /** What is said. */
  content: string;
}

/** The header text that opens a turn of each role. */
export const CHAT_HEADERS: Readonly<Record<ChatRole, string>> = {
  system: "### System:\n",
  user: "### User:\n",
  assistant: "### Assistant:\n",
};

/** What follows a system or user turn's content. */
export const CHAT_TURN_END = "\n\n";

/** The end marker of a reply for the char tokenizer (GPT-2 uses its <|endoftext|> id). */
export const CHAR_END_MARKER = "\u0003";

/** How the end marker is shown in text renderings (`renderChat`) with the GPT-2 tokenizer. */
export const GPT2_END_TEXT = "<|endoftext|>";

/** Every character the template adds to a char vocabulary. */
export function chatTemplateChars(): string {
  return Object.values(CHAT_HEADERS).join("") + CHAT_TURN_END + CHAR_END_MARKER;
}

/** A conversation as ids, and which of them carry loss (reply tokens and end markers). */
export interface EncodedChat {
  /** Token ids. */
  ids: Int32Array;
  /** 1 where the id is part of an assistant reply or its end marker, else 0. */
  mask: Uint8Array;
}

/** The template bound to a tokenizer: turns to ids, and the end marker's id. */
export class ChatTemplate {
  /** The id that ends each reply. */
  readonly endId: number;
  /** The text the end marker decodes to. */
  readonly endText: string;
  readonly #assistantHeader: Int32Array;

  /** Bind the template to `tokenizer`; a char vocabulary must hold the template's characters. */
  constructor(readonly tokenizer: Tokenizer) {
    if (tokenizer.kind === "gpt2") {
      this.endId = tokenizer.eotToken!;
      this.endText = GPT2_END_TEXT;
    } else {
      const missing = missingChars(tokenizer, chatTemplateChars());
      if (missing.length) {
        throw new DataError(
          `chat template: the char vocabulary lacks ${describeChars(missing)}, which ` +
            `the template needs`,
        );
      }
      this.endId = tokenizer.encode(CHAR_END_MARKER)[0];
      this.endText = CHAR_END_MARKER;
    }
    this.#assistantHeader = tokenizer.encode(CHAT_HEADERS.assistant);
  }

  /** The name checkpoints record. */
  get name(): string {
    return CHAT_TEMPLATE_NAME;
  }

  /** Ids of a system or user turn: its header, content and the blank line after it. */
  turn(role: "system" | "user", content: string): Int32Array {
    this.#checkText(content);
    return this.tokenizer.encode(CHAT_HEADERS[role] + content + CHAT_TURN_END);
  }

  /** Ids of the assistant header, after which a reply is generated. */
  assistantHeader(): Int32Array {
    return this.#assistantHeader.slice();
  }

  /** Ids of a reply and its end marker. */
  reply(content: string): Int32Array {
    this.#checkText(content);
    const ids = this.tokenizer.encode(content);
    const out = new Int32Array(ids.length + 1);
    out.set(ids);
    out[ids.length] = this.endId;
    return out;
  }

  /** A conversation as ids, with the loss mask set on every reply and its end marker. */
  encode(messages: readonly ChatMessage[]): EncodedChat {
    const pieces: [Int32Array, 0 | 1][] = [];
    for (const m of messages) {
      if (m.role === "assistant") {
        pieces.push([this.#assistantHeader, 0], [this.reply(m.content), 1]);
      } else {
        pieces.push([this.turn(m.role, m.content), 0]);
      }
    }
    const n = pieces.reduce((s, [p]) => s + p.length, 0);
    const ids = new Int32Array(n);
    const mask = new Uint8Array(n);
    let at = 0;
    for (const [p, m] of pieces) {
      ids.set(p, at);
      mask.fill(m, at, at + p.length);
      at += p.length;
    }
    return { ids, mask };
  }

  /** The text of an encoded conversation (equal to `renderChat` of its messages). */
  decode(ids: ArrayLike<number>): string {
    return this.tokenizer.decode(ids);
  }

  /** The char template's end marker inside a text would end a reply early: refuse it. */
  #checkText(text: string): void {
    if (this.tokenizer.kind === "char" && text.includes(CHAR_END_MARKER)) {
      throw new DataError(
        `chat template: the text holds U+0003, the char template's end marker, at offset ` +
          `${text.indexOf(CHAR_END_MARKER)}`,
      );
    }
  }
}

/** A conversation as the template's text (the end marker as `endText`: U+0003 or <|endoftext|>). */
export function renderChat(messages: readonly ChatMessage[], endText = CHAR_END_MARKER): string {
  return messages.map((m) =>
    m.role === "assistant"
      ? CHAT_HEADERS.assistant + m.content + endText
      : CHAT_HEADERS[m.role] + m.content + CHAT_TURN_END
  ).join("");
}

/** The characters of `text` that a char tokenizer lacks, each once, in order of appearance. */
export function missingChars(tokenizer: Tokenizer, text: string): string[] {
  if (tokenizer.kind !== "char") return [];
  const missing = new Set<string>();
  for (const ch of new Set(text)) {
    try {
      tokenizer.encode(ch);
    } catch {
      missing.add(ch);
    }
  }
  return [...missing];
}

/** Characters for messages: printable ones quoted, others as JSON escapes, with code points. */
export function describeChars(chars: readonly string[]): string {
  return chars.map((ch) => {
    const cp = ch.codePointAt(0)!;
    const shown = /[\p{L}\p{N}\p{P}\p{S}]/u.test(ch) ? `'${ch}'` : JSON.stringify(ch);
    return `${shown} (U+${cp.toString(16).toUpperCase().padStart(4, "0")})`;
  }).join(", ");
}

/** A tokenizer's JSON with the template's name added (a checkpoint's `tokenizer` metadata). */
export function withChatTemplate(json: TokenizerJSON): TokenizerJSON & { chatTemplate: string } {
  return { ...json, chatTemplate: CHAT_TEMPLATE_NAME };
}

/**
 * The chat template a checkpoint's tokenizer JSON records: null for a model not tuned with one;
 * a name this build does not know is a DataError that says to update.
 */
export function chatTemplateOf(json: unknown): string | null {
  const name = (json as { chatTemplate?: unknown } | null)?.chatTemplate;
  if (name === undefined) return null;
  if (name !== CHAT_TEMPLATE_NAME) {
    throw new DataError(
      `chat template ${JSON.stringify(name)} is not known to this build (it knows ` +
        `${CHAT_TEMPLATE_NAME}); update bitgpt to chat with this model`,
    );
  }
  return name;
}
