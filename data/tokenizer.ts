// Tokenizers: a character-level vocabulary built from the training text (as nanoGPT's
// shakespeare_char) and GPT-2's byte-level BPE (r50k_base, through the gpt-tokenizer package),
// whose 50257 ids are padded to 50304 rows as nanoGPT does, a multiple of 64 that is faster.

import { encode as r50kEncode } from "npm:gpt-tokenizer@4.0.0/encoding/r50k_base";
import r50kRanks from "npm:gpt-tokenizer@4.0.0/bpeRanks/r50k_base";
import { TokenizerError } from "./errors.ts";

/** The tokenizers there are. */
export type TokenizerKind = "gpt2" | "char";

/** What `toJSON()` returns and `tokenizerFromJSON()` takes; saved in checkpoints. */
export type TokenizerJSON =
  | { kind: "char"; chars: string[] }
  | { kind: "gpt2"; encoding: "r50k_base"; vocabSize: number };

/** Text to token ids and back. */
export interface Tokenizer {
  /** Which tokenizer this is. */
  readonly kind: TokenizerKind;
  /** Rows the model's embedding needs: every id `encode` returns is below it. */
  readonly vocabSize: number;
  /** The end-of-text id, where the vocabulary has one. */
  readonly eotToken?: number;
  /** Token ids of `text`. Throws `TokenizerError` for text outside the vocabulary. */
  encode(text: string): Int32Array;
  /** Text of `ids`; ids past the real vocabulary (padding rows) become U+FFFD. */
  decode(ids: ArrayLike<number>): string;
  /** UTF-8 bytes of `ids`, for streaming decoders (a token may end mid-character). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
  /** A JSON-ready description that `tokenizerFromJSON` restores. */
  toJSON(): TokenizerJSON;
}

const REPLACEMENT = "\uFFFD";
const utf8 = new TextEncoder();

/** `ids[i]` checked to be a non-negative integer id. */
function idAt(kind: string, ids: ArrayLike<number>, i: number): number {
  const id = ids[i];
  if (!Number.isInteger(id) || id < 0) {
    throw new TokenizerError(`${kind} tokenizer: cannot decode id ${id} at position ${i}`);
  }
  return id;
}

/** A character for messages: printable ones quoted, others escaped, with the code point. */
function describeChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  const shown = /[\p{L}\p{N}\p{P}\p{S}]/u.test(ch) ? `'${ch}'` : JSON.stringify(ch);
  return `${shown} (U+${cp.toString(16).toUpperCase().padStart(4, "0")})`;
}

/** One id per distinct character (Unicode code point) of the training text, in sorted order. */
export class CharTokenizer implements Tokenizer {
  /** Always "char". */
  readonly kind = "char";
  /** The vocabulary: id i is `chars[i]`. */
  readonly chars: readonly string[];
  /** Number of characters. */
  readonly vocabSize: number;
  #bmp = new Int32Array(65536).fill(-1); // ids of code points below 0x10000
  #astral = new Map<number, number>();

  /** A tokenizer whose id i is `chars[i]`; each entry must be one distinct code point. */
  constructor(chars: readonly string[]) {
    if (chars.length === 0) throw new TokenizerError("char tokenizer: the vocabulary is empty");
    chars.forEach((ch, id) => {
      const cp = typeof ch === "string" ? ch.codePointAt(0) : undefined;
      if (cp === undefined || String.fromCodePoint(cp) !== ch) {
        throw new TokenizerError(
          `char tokenizer: vocabulary entry ${id} is ${JSON.stringify(ch)}, not one character`,
        );
      }
      if (this.#lookup(cp) !== -1) {
        throw new TokenizerError(`char tokenizer: ${describeChar(ch)} appears twice`);
      }
      if (cp < 65536) this.#bmp[cp] = id;
      else this.#astral.set(cp, id);
    });
    this.chars = Object.freeze([...chars]);
    this.vocabSize = chars.length;
  }

  /** The vocabulary of `text`: its distinct characters sorted by code point (as Python's). */
  static fromText(text: string): CharTokenizer {
    const chars = [...new Set(text)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    return new CharTokenizer(chars);
  }

  /** Restore a tokenizer from `toJSON()` output. */
  static fromJSON(obj: unknown): CharTokenizer {
    const o = obj as { kind?: unknown; chars?: unknown } | null;
    if (o?.kind !== "char" || !Array.isArray(o.chars)) {
      throw new TokenizerError(
        `char tokenizer: expected {"kind": "char", "chars": [...]}, got ${
          JSON.stringify(obj)?.slice(0, 80)
        }`,
      );
    }
    return new CharTokenizer(o.chars);
  }

  #lookup(cp: number): number {
    return cp < 65536 ? this.#bmp[cp] : this.#astral.get(cp) ?? -1;
  }

  /** Ids of each character of `text`; a character outside the vocabulary is an error. */
  encode(text: string): Int32Array {
    const out = new Int32Array(text.length); // upper bound: one id per UTF-16 unit
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const cp = text.codePointAt(i)!;
      const id = this.#lookup(cp);
      if (id < 0) {
        throw new TokenizerError(
          `char tokenizer: character ${describeChar(String.fromCodePoint(cp))} at offset ${i} ` +
            `is not in the vocabulary of ${this.vocabSize} characters`,
        );
      }
      out[n++] = id;
      if (cp >= 65536) i++; // the low surrogate
    }
    return out.slice(0, n);
  }

  /** The characters of `ids`; ids at or past `vocabSize` (padding rows) become U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    const parts: string[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = idAt("char", ids, i);
      parts[i] = id < this.chars.length ? this.chars[id] : REPLACEMENT;
    }
    return parts.join("");
  }

  /** UTF-8 bytes of `decode(ids)`. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    return utf8.encode(this.decode(ids));
  }

  /** `{ kind: "char", chars }`. */
  toJSON(): TokenizerJSON {
    return { kind: "char", chars: [...this.chars] };
  }
}

/** GPT-2's real vocabulary: 50000 merges, 256 bytes and `<|endoftext|>`. */
export const GPT2_VOCAB_SIZE = 50257;
/** GPT-2's vocabulary padded up to a multiple of 64, as nanoGPT does. */
export const GPT2_PADDED_VOCAB_SIZE = 50304;
/** GPT-2's `<|endoftext|>` id. */
export const GPT2_EOT_TOKEN = 50256;

let gpt2Bytes: Uint8Array[] | null = null;

/** Each GPT-2 id's bytes, built once from the package's rank table. */
function gpt2TokenBytes(): Uint8Array[] {
  if (gpt2Bytes) return gpt2Bytes;
  const table = r50kRanks.map((t) => typeof t === "string" ? utf8.encode(t) : Uint8Array.from(t));
  if (table.length !== GPT2_EOT_TOKEN) {
    throw new TokenizerError(
      `gpt2 tokenizer: expected ${GPT2_EOT_TOKEN} BPE ranks, found ${table.length}`,
    );
  }
  table.push(utf8.encode("<|endoftext|>"));
  return gpt2Bytes = table;
}

/**
 * GPT-2 byte-level BPE (r50k_base). Text is encoded as ordinary text, as nanoGPT's
 * `encode_ordinary` does: a literal "<|endoftext|>" in the text is not the special token.
 * Decoding maps ids 50257..vocabSize-1 (padding rows that an untrained model may still sample)
 * to U+FFFD and bytes that are not valid UTF-8 to U+FFFD. Decoding is done here from the rank
 * table rather than with the package's `decode`, which keeps a shared streaming UTF-8 decoder
 * and can carry an incomplete character from one call into the next.
 */
export class Gpt2Tokenizer implements Tokenizer {
  /** Always "gpt2". */
  readonly kind = "gpt2";
  /** `<|endoftext|>`. */
  readonly eotToken: number = GPT2_EOT_TOKEN;

  /** `vocabSize` is the model's embedding rows, at least 50257 (default 50304). */
  constructor(readonly vocabSize: number = GPT2_PADDED_VOCAB_SIZE) {
    if (!Number.isInteger(vocabSize) || vocabSize < GPT2_VOCAB_SIZE) {
      throw new TokenizerError(
        `gpt2 tokenizer: vocabSize must be an integer >= ${GPT2_VOCAB_SIZE}, got ${vocabSize}`,
      );
    }
  }

  /** BPE ids of `text`, every piece of it ordinary text. */
  encode(text: string): Int32Array {
    return Int32Array.from(r50kEncode(text, { disallowedSpecial: new Set() }));
  }

  /** Concatenated bytes of `ids`; padding ids give U+FFFD's bytes. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const table = gpt2TokenBytes();
    const replacement = utf8.encode(REPLACEMENT);
    const pieces: Uint8Array[] = [];
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = idAt("gpt2", ids, i);
      if (id >= this.vocabSize) {
        throw new TokenizerError(
          `gpt2 tokenizer: id ${id} at position ${i} is past the vocabulary (${this.vocabSize})`,
        );
      }
      const piece = id < table.length ? table[id] : replacement;
      pieces.push(piece);
      length += piece.length;
    }
    const out = new Uint8Array(length);
    let at = 0;
    for (const p of pieces) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Text of `ids`; invalid UTF-8 (a character cut at either end) becomes U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return new TextDecoder().decode(this.decodeBytes(ids));
  }

  /** `{ kind: "gpt2", encoding: "r50k_base", vocabSize }`. */
  toJSON(): TokenizerJSON {
    return { kind: "gpt2", encoding: "r50k_base", vocabSize: this.vocabSize };
  }
}

/** Restore a tokenizer from its `toJSON()` output (as saved in a checkpoint). */
export function tokenizerFromJSON(obj: unknown): Tokenizer {
  const o = obj as Partial<{ kind: unknown; encoding: unknown; vocabSize: unknown }> | null;
  if (o?.kind === "char") return CharTokenizer.fromJSON(obj);
  if (o?.kind === "gpt2") {
    if (o.encoding !== undefined && o.encoding !== "r50k_base") {
      throw new TokenizerError(`gpt2 tokenizer: unknown encoding ${JSON.stringify(o.encoding)}`);
    }
    return new Gpt2Tokenizer((o.vocabSize as number | undefined) ?? GPT2_PADDED_VOCAB_SIZE);
  }
  throw new TokenizerError(
    `tokenizer: expected kind "gpt2" or "char", got ${JSON.stringify(o?.kind ?? obj)}`,
  );
}

/** A fresh tokenizer of `kind`; a char vocabulary is built from `text`. */
export function makeTokenizer(kind: TokenizerKind, text: string): Tokenizer {
  switch (kind) {
    case "gpt2":
      return new Gpt2Tokenizer();
    case "char":
      return CharTokenizer.fromText(text);
    default:
      throw new TokenizerError(`tokenizer: unknown kind ${JSON.stringify(kind satisfies never)}`);
  }
}
