// Instruction data: a JSONL file, one record per line, either
//   {"prompt": "...", "response": "..."}             (optional "system": "...")
//   {"messages": [{"role": "system" | "user" | "assistant", "content": "..."}, ...]}
// read and checked (each problem one DataError naming the file, the line and what is wrong),
// encoded with the chat template (data/chat_template.ts) into ids and a loss mask, and split
// 90/10 into training and validation records (whole records, in file order, as splitTokens
// splits text). Keys other than these are ignored, so records may carry ids or sources.

import {
  CHAT_ROLES,
  type ChatMessage,
  type ChatRole,
  type ChatTemplate,
  chatTemplateChars,
  describeChars,
  type EncodedChat,
} from "./chat_template.ts";
import { DataError } from "./errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** One record of a JSONL file: its conversation and the line it came from. */
export interface InstructionRecord {
  /** The line number in the file (1-based). */
  line: number;
  /** The turns, ending with an assistant reply. */
  messages: ChatMessage[];
}

/** A record encoded with the template: ids, loss mask and its line. */
export interface EncodedRecord extends EncodedChat {
  /** The line number in the file (1-based). */
  line: number;
}

/** What a JSON value is, for messages: "an array", "a number", "null", ... */
function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/** The conversation of a `{"prompt", "response"}` record. */
function promptResponse(o: Record<string, unknown>, fail: (what: string) => never): ChatMessage[] {
  for (const k of ["prompt", "response"]) {
    if (!Object.hasOwn(o, k)) fail(`missing "${k}"`);
  }
  for (const k of ["prompt", "response", "system"]) {
    if (Object.hasOwn(o, k) && typeof o[k] !== "string") {
      fail(`"${k}" must be a string, got ${kindOf(o[k])}`);
    }
  }
  if (o.response === "") fail(`"response" is empty`);
  const system: ChatMessage[] = typeof o.system === "string"
    ? [{ role: "system", content: o.system }]
    : [];
  return [
    ...system,
    { role: "user", content: o.prompt as string },
    { role: "assistant", content: o.response as string },
  ];
}

/** The conversation of a `{"messages": [...]}` record. */
function messagesOf(list: unknown, fail: (what: string) => never): ChatMessage[] {
  if (!Array.isArray(list)) fail(`"messages" must be an array, got ${kindOf(list)}`);
  if (list.length === 0) fail(`"messages" is empty`);
  const out: ChatMessage[] = list.map((m: unknown, i: number) => {
    const at = `messages[${i}]`;
    if (kindOf(m) !== "an object") fail(`${at} must be an object, got ${kindOf(m)}`);
    const { role, content } = m as Record<string, unknown>;
    if (!CHAT_ROLES.includes(role as ChatRole)) {
      fail(`${at}.role must be "system", "user" or "assistant", got ${JSON.stringify(role)}`);
    }
    if (typeof content !== "string") fail(`${at}.content must be a string, got ${kindOf(content)}`);
    if (role === "system" && i > 0) fail(`${at} is a system message; only the first may be`);
    if (role === "assistant" && content === "") fail(`${at} is an empty assistant message`);
    return { role: role as ChatRole, content };
  });
  if (out[out.length - 1].role !== "assistant") {
    fail(`the last message must be the assistant's (only replies are trained on)`);
  }
  return out;
}

/** True when `path` names instruction data: a `.jsonl` file. */
export function isInstructionFile(path: string): boolean {
  return /\.jsonl$/i.test(path);
}

/**
 * The records of a JSONL text; blank lines are skipped. `file` names the file in errors, each
 * one line: `'qa.jsonl' line 3: missing "response"`.
 */
export function parseInstructions(text: string, file: string): InstructionRecord[] {
  const records: InstructionRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, "");
    if (raw.trim() === "") continue;
    const line = i + 1;
    const fail = (what: string): never => {
      throw new DataError(`'${file}' line ${line}: ${what}`);
    };
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      fail(`not valid JSON (${(e as Error).message.split("\n")[0]})`);
    }
    if (kindOf(v) !== "an object") {
      fail(`expected an object with "prompt" and "response", or "messages"; got ${kindOf(v)}`);
    }
    const o = v as Record<string, unknown>;
    const pair = Object.hasOwn(o, "prompt") || Object.hasOwn(o, "response");
    if (Object.hasOwn(o, "messages") && pair) {
      fail(`give "messages" or "prompt" and "response", not both`);
    }
    if (!Object.hasOwn(o, "messages") && !pair) fail(`missing "prompt" and "response"`);
    const messages = pair ? promptResponse(o, fail) : messagesOf(o.messages, fail);
    records.push({ line, messages });
  }
  if (records.length === 0) {
    throw new DataError(`'${file}' holds no records; write one JSON object per line`);
  }
  return records;
}

/** The text a char vocabulary for these records needs: every content and the template. */
export function instructionText(records: readonly InstructionRecord[]): string {
  return records.flatMap((r) => r.messages.map((m) => m.content)).join("") + chatTemplateChars();
}

/**
 * Throw one DataError when a char tokenizer lacks characters the records or the template need,
 * naming each with the first line that has it ("the template" for the template's own).
 */
export function checkCharsKnown(
  tokenizer: Tokenizer,
  records: readonly InstructionRecord[],
  file: string,
): void {
  if (tokenizer.kind !== "char") return;
  const firstLine = new Map<string, number>();
  for (const ch of chatTemplateChars()) firstLine.set(ch, 0);
  for (const r of records) {
    for (const m of r.messages) {
      for (const ch of m.content) if (!firstLine.has(ch)) firstLine.set(ch, r.line);
    }
  }
  const missing = new Map<number, string[]>(); // by the line that needs them first (0: template)
  let count = 0;
  for (const [ch, line] of firstLine) {
    try {
      tokenizer.encode(ch);
    } catch {
      missing.set(line, [...(missing.get(line) ?? []), ch]);
      count++;
    }
  }
  if (count === 0) return;
  const groups = [...missing].slice(0, 3).map(([line, chars]) =>
    `${line === 0 ? "the chat template's" : `line ${line}'s`} ${describeChars(chars.slice(0, 6))}` +
    (chars.length > 6 ? ` and ${chars.length - 6} more` : "")
  );
  const more = missing.size > 3 ? `; and those of ${missing.size - 3} more lines` : "";
  throw new DataError(
    `'${file}': the char vocabulary of ${tokenizer.vocabSize} characters lacks ${count} that ` +
      `the records need: ${groups.join("; ")}${more}`,
  );
}

/** Encode every record with the template; a text the template cannot hold names its line. */
export function encodeRecords(
  records: readonly InstructionRecord[],
  template: ChatTemplate,
  file: string,
): EncodedRecord[] {
  return records.map((r) => {
    try {
      return { ...template.encode(r.messages), line: r.line };
    } catch (e) {
      if (!(e instanceof DataError)) throw e;
      throw new DataError(`'${file}' line ${r.line}: ${e.message}`);
    }
  });
}

/**
 * The first `trainFraction` of the records (at least one) for training and the rest (at least
 * one) for validation, in file order: records, not tokens, so no record is split.
 */
export function splitRecords<R>(
  records: readonly R[],
  trainFraction = 0.9,
  file = "dataset",
): { train: R[]; val: R[] } {
  if (!(trainFraction > 0 && trainFraction < 1)) {
    throw new DataError(`splitRecords: trainFraction must be in (0, 1), got ${trainFraction}`);
  }
  if (records.length < 2) {
    throw new DataError(
      `'${file}' has ${records.length} record; training and validation need at least 2`,
    );
  }
  const n = Math.min(records.length - 1, Math.max(1, Math.floor(records.length * trainFraction)));
  return { train: records.slice(0, n), val: records.slice(n) };
}
