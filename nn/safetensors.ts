// safetensors files, bytes in and bytes out (https://github.com/huggingface/safetensors): an
// 8-byte little-endian header length N, N bytes of UTF-8 JSON naming each tensor's dtype, shape
// and [begin, end) byte range, then the raw little-endian data. Readers never trust the file:
// every field is checked before a byte is copied (the tensors must tile the data section exactly,
// no JSON key may repeat), and each failure is one `SafetensorsError` (a CheckpointError).

import { CheckpointError } from "../engine/errors.ts";

/** Element types this module reads; F16, BF16 and I64 are converted when read. */
export type SafeDType = "F32" | "I32" | "U8" | "U32" | "F16" | "BF16" | "F64" | "I64";

/** A named tensor's contents: row-major data whose length is the product of `shape`. */
export interface NamedArray {
  /** The element type of `data` (after any conversion on read). */
  dtype: SafeDType;
  /** Dimensions; `[]` is a scalar holding one element. */
  shape: number[];
  /** The elements, row-major. */
  data: Float32Array | Int32Array | Uint8Array | Uint32Array | Float64Array;
  /** Set on read when the file held another dtype (F16, BF16 -> F32; I64 -> I32). */
  storedDtype?: SafeDType;
}

/** A safetensors file (or a tensor given to the writer) is malformed; says what and where. */
export class SafetensorsError extends CheckpointError {
  /** Always "SafetensorsError". */
  override name = "SafetensorsError";
}

/** The reference implementation's cap on the JSON header. */
export const MAX_HEADER_BYTES = 100_000_000;

// deno-fmt-ignore
const ITEM_BYTES: Record<SafeDType, number> = {
  F32: 4, I32: 4, U8: 1, U32: 4, F16: 2, BF16: 2, F64: 8, I64: 8,
};

// deno-fmt-ignore
type ArrayCtor = Float32ArrayConstructor | Int32ArrayConstructor | Uint8ArrayConstructor |
  Uint32ArrayConstructor | Float64ArrayConstructor;

const SUPPORTED = Object.keys(ITEM_BYTES).join(", ");

/** The dtypes written as-is, with the typed array each one must hold. */
// deno-fmt-ignore
const WRITABLE: Partial<Record<SafeDType, ArrayCtor>> = {
  F32: Float32Array, I32: Int32Array, U8: Uint8Array, U32: Uint32Array, F64: Float64Array,
};

// Typed arrays use the host's byte order; the format is little-endian.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(message: string): never {
  throw new SafetensorsError(`safetensors: ${message}`);
}

/** A tensor name for messages: quoted, escaped if it holds control characters, shortened. */
function q(name: string): string {
  const short = name.length > 80 ? `${name.slice(0, 77)}...` : name;
  return /[\p{Cc}']/u.test(short) ? JSON.stringify(short) : `'${short}'`;
}

/** A value from the file for messages: JSON, shortened. */
function show(x: unknown): string {
  const s = JSON.stringify(x) ?? String(x);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function fmt(xs: readonly unknown[]): string {
  return `[${xs.map((x) => String(x)).join(", ")}]`;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Serialise tensors (laid out in insertion order) and optional string metadata into a
 * safetensors file. Writes F32, I32, U8, U32 and F64; `data` must be the matching typed array.
 */
export function writeSafetensors(
  tensors: Record<string, NamedArray>,
  metadata?: Record<string, string>,
): Uint8Array {
  if (!HOST_IS_LITTLE_ENDIAN) fail("big-endian hosts are not supported");
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (k === "__proto__") fail(`metadata key '__proto__' is not allowed`);
      if (typeof v !== "string") fail(`metadata ${q(k)} must be a string, got ${typeof v}`);
    }
    header.__metadata__ = { ...metadata };
  }
  const names = Object.keys(tensors);
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    checkWritable(name, t);
    const bytes = t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = json.length + ((8 - (json.length % 8)) % 8); // spaces, as the reference pads
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const name of names) {
    const d = tensors[name].data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return out;
}

function checkWritable(name: string, t: NamedArray): void {
  const where = `tensor ${q(name)}`;
  if (name === "__metadata__" || name === "__proto__") fail(`${where}: the name is reserved`);
  const ctor = WRITABLE[t.dtype];
  if (!ctor) fail(`${where}: cannot write dtype ${t.dtype} (writable: F32, I32, U8, U32, F64)`);
  const got = t.data.constructor.name;
  if (!(t.data instanceof ctor)) {
    fail(`${where}: dtype ${t.dtype} needs a ${ctor.name}, got ${got}`);
  }
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`${where}: shape ${fmt(t.shape)} must hold non-negative integers`);
  }
  const n = numel(t.shape);
  if (n !== t.data.length) {
    fail(`${where}: shape ${fmt(t.shape)} needs ${n} elements, got ${t.data.length}`);
  }
}

/** One header entry, validated. */
interface Entry {
  name: string;
  dtype: SafeDType;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parse a safetensors file. Every tensor is copied out of `bytes`; F16 and BF16 become
 * Float32Array, I64 becomes Int32Array (an error if a value does not fit). Throws
 * `SafetensorsError` naming the problem and the tensor for any malformed input.
 */
export function readSafetensors(
  bytes: Uint8Array,
): { tensors: Record<string, NamedArray>; metadata: Record<string, string> } {
  if (!HOST_IS_LITTLE_ENDIAN) fail("big-endian hosts are not supported");
  const { header, dataStart } = parseHeader(bytes);
  const dataLen = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const name of Object.keys(header)) {
    if (name === "__proto__") fail(`tensor name '__proto__' is not allowed`);
    if (name === "__metadata__") metadata = parseMetadata(header[name]);
    else entries.push(parseEntry(name, header[name], dataLen));
  }
  checkCoverage(entries, dataLen);
  // Object.prototype is safe here: '__proto__', the one key assignment treats specially, was
  // rejected above. Plain objects keep results comparable with ordinary literals in tests.
  const tensors: Record<string, NamedArray> = {};
  for (const e of entries) {
    tensors[e.name] = decodeEntry(e, bytes.subarray(dataStart + e.begin, dataStart + e.end));
  }
  return { tensors, metadata };
}

function parseHeader(bytes: Uint8Array): { header: Record<string, unknown>; dataStart: number } {
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, too short for the 8-byte header size`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail(`header size ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  }
  if (n > BigInt(bytes.length - 8)) {
    fail(`header size ${n} exceeds the ${bytes.length - 8} bytes after the size (truncated?)`);
  }
  const dataStart = 8 + Number(n);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart));
  } catch {
    fail("header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    const why = (e as Error).message.split("\n")[0].replace(/\p{Cc}/gu, "?");
    fail(`header is not valid JSON (${why})`);
  }
  if (!isPlainObject(header)) fail("header is not a JSON object");
  const dup = duplicateKey(text);
  if (dup !== null) fail(`header repeats the key ${q(dup)} (JSON readers disagree on which wins)`);
  return { header, dataStart };
}

/**
 * The first key that appears twice in one JSON object of `text` (already valid JSON), or null.
 * JSON.parse keeps the last, other readers the first: a file that says two things is refused.
 */
export function duplicateKey(text: string): string | null {
  const stack: (Set<string> | null)[] = []; // one entry per open object (a key set) or array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x7b) { // {
      stack.push(new Set());
      expectKey = true;
    } else if (ch === 0x5b) { // [
      stack.push(null);
    } else if (ch === 0x7d || ch === 0x5d) { // } ]
      stack.pop();
      expectKey = false;
    } else if (ch === 0x2c) { // ,
      expectKey = stack[stack.length - 1] instanceof Set;
    } else if (ch === 0x22) { // "
      let j = i + 1;
      let escaped = false;
      for (let c = text.charCodeAt(j); c !== 0x22; c = text.charCodeAt(j)) {
        if (c === 0x5c) escaped = true;
        j += c === 0x5c ? 2 : 1; // a backslash escapes the next character
      }
      if (expectKey) {
        const raw = text.slice(i, j + 1);
        const key: string = escaped ? JSON.parse(raw) : raw.slice(1, -1);
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    }
  }
  return null;
}

/**
 * The tensors' byte ranges must tile the data section exactly, as the reference reader demands:
 * no overlaps, no gaps (a shifted header start shows up as one), no bytes after the last tensor.
 */
function checkCoverage(entries: Entry[], dataLen: number): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: Entry | null = null;
  for (const e of sorted) {
    if (e.begin < at) {
      fail(
        `tensor ${q(e.name)} data_offsets [${e.begin}, ${e.end}] overlap tensor ${q(prev!.name)} ` +
          `[${prev!.begin}, ${prev!.end}]`,
      );
    }
    if (e.begin > at) {
      fail(
        `bytes [${at}, ${e.begin}) of the data section belong to no tensor (before tensor ` +
          `${q(e.name)}); the header or the data is damaged`,
      );
    }
    at = e.end;
    prev = e;
  }
  if (at !== dataLen) {
    fail(
      `the data section holds ${dataLen} bytes but the tensors cover ${at}: ${dataLen - at} ` +
        `trailing bytes (a wrong header size, or a damaged file)`,
    );
  }
}

function parseMetadata(raw: unknown): Record<string, string> {
  if (!isPlainObject(raw)) fail("__metadata__ is not a JSON object");
  const out: Record<string, string> = {};
  for (const k of Object.keys(raw)) {
    if (k === "__proto__") fail(`__metadata__ key '__proto__' is not allowed`);
    const v = raw[k];
    if (typeof v !== "string") fail(`__metadata__ ${q(k)} is a ${typeof v}, not a string`);
    out[k] = v;
  }
  return out;
}

function parseEntry(name: string, raw: unknown, dataLen: number): Entry {
  const where = `tensor ${q(name)}`;
  if (!isPlainObject(raw)) fail(`${where} header entry is not a JSON object`);
  for (const field of ["dtype", "shape", "data_offsets"]) {
    if (!Object.hasOwn(raw, field)) fail(`${where} header entry has no "${field}"`);
  }
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== "string" || !Object.hasOwn(ITEM_BYTES, dtype)) {
    fail(`${where} has unsupported dtype ${show(dtype)} (supported: ${SUPPORTED})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`${where} shape ${show(shape)} is not a list of non-negative integers`);
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    fail(`${where} data_offsets ${show(offsets)} are not two non-negative integers`);
  }
  const [begin, end] = offsets as number[];
  if (begin > end) fail(`${where} data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataLen) {
    fail(`${where} data_offsets [${begin}, ${end}] exceed the data section (${dataLen} bytes)`);
  }
  const count = numel(shape as number[]);
  const itemBytes = ITEM_BYTES[dtype as SafeDType];
  if (!Number.isSafeInteger(count) || count * itemBytes !== end - begin) {
    fail(
      `${where} shape ${fmt(shape)} of ${dtype} needs ${count * itemBytes} bytes, ` +
        `data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  return { name, dtype: dtype as SafeDType, shape: shape as number[], begin, end };
}

/** Copy an entry's bytes into a fresh, aligned typed array, converting F16/BF16/I64. */
function decodeEntry(e: Entry, raw: Uint8Array): NamedArray {
  const n = numel(e.shape);
  const copy = <T extends ArrayCtor>(ctor: T): InstanceType<T> => {
    const out = new ctor(n) as InstanceType<T>;
    new Uint8Array(out.buffer).set(raw);
    return out;
  };
  switch (e.dtype) {
    case "F32":
    case "I32":
    case "U8":
    case "U32":
    case "F64":
      return { dtype: e.dtype, shape: e.shape, data: copy(WRITABLE[e.dtype]!) };
    case "F16":
    case "BF16": {
      const halves = new Uint16Array(n);
      new Uint8Array(halves.buffer).set(raw);
      const data = e.dtype === "F16" ? f16ToF32(halves) : bf16ToF32(halves);
      return { dtype: "F32", shape: e.shape, data, storedDtype: e.dtype };
    }
    case "I64":
      return { dtype: "I32", shape: e.shape, data: i64ToI32(e, raw, n), storedDtype: "I64" };
    default:
      return e.dtype satisfies never;
  }
}

/** IEEE half -> single, exact (every half, subnormals included, is a float32). */
function f16ToF32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const sign = h[i] & 0x8000 ? -1 : 1;
    const exp = (h[i] >> 10) & 0x1f;
    const frac = h[i] & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24; // zero or subnormal
    else if (exp === 0x1f) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** bfloat16 is the top half of a float32. */
function bf16ToF32(h: Uint16Array): Float32Array {
  const bits = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
  return new Float32Array(bits.buffer);
}

function i64ToI32(e: Entry, raw: Uint8Array, n: number): Int32Array {
  const words = new Int32Array(2 * n);
  new Uint8Array(words.buffer).set(raw);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const [lo, hi] = [words[2 * i], words[2 * i + 1]];
    if (hi !== (lo < 0 ? -1 : 0)) { // fits iff the high word is the sign extension of the low
      const v = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
      fail(`tensor ${q(e.name)}: I64 value ${v} at index ${i} does not fit in int32`);
    }
    out[i] = lo;
  }
  return out;
}
