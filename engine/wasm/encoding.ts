// Binary encoding helpers of the WebAssembly module builder (builder.ts): value types, LEB128
// integers, names, sections and vectors, as in the core spec's binary format
// (https://webassembly.github.io/spec/core/binary/).

/** A WebAssembly value type. */
export type ValType = "i32" | "i64" | "f32" | "f64" | "v128";

/** The binary code of each value type. */
export const VALTYPE_CODE: Record<ValType, number> = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
};

/** Unsigned LEB128 of a u32. */
export function uleb(n: number, out: number[] = []): number[] {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`uleb: ${n}`);
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of an integer (i32 or i64 range). */
export function sleb(v: number | bigint, out: number[] = []): number[] {
  let n = BigInt(v);
  for (;;) {
    const byte = Number(n & 0x7fn);
    n >>= 7n;
    const done = (n === 0n && (byte & 0x40) === 0) || (n === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** A name: its UTF-8 length, then its bytes. */
export function name(s: string, out: number[]): void {
  const b = new TextEncoder().encode(s);
  uleb(b.length, out);
  for (const x of b) out.push(x);
}

/** A section: id, byte length, body. */
export function section(id: number, body: number[], out: number[]): void {
  out.push(id);
  uleb(body.length, out);
  for (const x of body) out.push(x);
}

/** A vector: the count, then each item as `write` encodes it. */
export function vec<T>(items: readonly T[], write: (item: T, out: number[]) => void): number[] {
  const out = uleb(items.length);
  for (const it of items) write(it, out);
  return out;
}
