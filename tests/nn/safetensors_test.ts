// Tests for nn/safetensors.ts: bit-exact round trips, F16/BF16/I64 reading, one test per class
// of corrupt file, and a seeded fuzz test (byte flips, truncations) that must only ever throw
// SafetensorsError or return consistent tensors.

import assert from "node:assert/strict";
import {
  type NamedArray,
  readSafetensors,
  SafetensorsError,
  writeSafetensors,
} from "../../nn/safetensors.ts";

/** A file from a raw header object (or JSON text) and a data section, padded like the writer. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function sample(): Record<string, NamedArray> {
  return {
    wte: {
      dtype: "F32",
      shape: [2, 3],
      data: new Float32Array([1.5, -0, NaN, Infinity, 1e-45, -3.4028234663852886e38]),
    },
    idx: { dtype: "I32", shape: [4], data: new Int32Array([0, -1, 2147483647, -2147483648]) },
    mask: { dtype: "U8", shape: [1, 3], data: new Uint8Array([0, 128, 255]) },
    packed: { dtype: "U32", shape: [2], data: new Uint32Array([0, 4294967295]) },
    ref: { dtype: "F64", shape: [], data: new Float64Array([Math.PI]) },
    step: { dtype: "I32", shape: [], data: new Int32Array([7]) },
    empty: { dtype: "F32", shape: [0, 5], data: new Float32Array(0) },
  };
}

function expectError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => readSafetensors(bytes), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), "message is one line");
    return true;
  });
}

Deno.test("safetensors: round trip is bit-exact for every written dtype", () => {
  const tensors = sample();
  const file = writeSafetensors(tensors, { format: "pt", note: "ünïcode ✓" });
  const { tensors: back, metadata } = readSafetensors(file);
  assert.deepEqual(metadata, { format: "pt", note: "ünïcode ✓" });
  assert.deepEqual(Object.keys(back), Object.keys(tensors));
  for (const [name, t] of Object.entries(tensors)) {
    assert.equal(back[name].dtype, t.dtype, name);
    assert.deepEqual(back[name].shape, t.shape, name);
    assert.equal(back[name].data.constructor, t.data.constructor, name);
    assert.deepEqual(bytesOf(back[name].data), bytesOf(t.data), name);
  }
});

Deno.test("safetensors: header is space-padded to 8 bytes and data is in insertion order", () => {
  const file = writeSafetensors(sample());
  const n = Number(new DataView(file.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const header = new TextDecoder().decode(file.subarray(8, 8 + n));
  assert.match(header, /^\{.*\} *$/);
  const parsed = JSON.parse(header);
  assert.equal(parsed.__metadata__, undefined);
  let end = 0;
  for (const name of Object.keys(sample())) {
    assert.equal(parsed[name].data_offsets[0], end, name);
    end = parsed[name].data_offsets[1];
  }
  assert.equal(8 + n + end, file.length);
});

Deno.test("safetensors: reads data from a misaligned view of a larger buffer", () => {
  const file = writeSafetensors(sample());
  const big = new Uint8Array(file.length + 3);
  big.set(file, 3);
  const { tensors } = readSafetensors(big.subarray(3));
  assert.equal(tensors.wte.data[0], 1.5);
  assert.equal(tensors.idx.data[3], -2147483648);
});

Deno.test("safetensors: F16 and BF16 are upcast to F32 exactly", () => {
  // F16: 1, -2.5, 65504 (max), 2^-24 (min subnormal), 1023 * 2^-24 (max subnormal), -0, Inf, NaN
  const f16 = new Uint16Array([0x3c00, 0xc100, 0x7bff, 0x0001, 0x03ff, 0x8000, 0x7c00, 0x7e00]);
  // BF16: 1, -2.5, 65280, 2^-133 (subnormal), -Inf
  const bf16 = new Uint16Array([0x3f80, 0xc020, 0x477f, 0x0001, 0xff80]);
  const data = new Uint8Array(f16.byteLength + bf16.byteLength);
  data.set(bytesOf(f16), 0);
  data.set(bytesOf(bf16), f16.byteLength);
  const file = build({
    h: { dtype: "F16", shape: [2, 4], data_offsets: [0, 16] },
    b: { dtype: "BF16", shape: [5], data_offsets: [16, 26] },
  }, data);
  const { tensors } = readSafetensors(file);
  assert.equal(tensors.h.dtype, "F32");
  assert.equal(tensors.h.storedDtype, "F16");
  assert.ok(tensors.h.data instanceof Float32Array);
  const h = [...tensors.h.data];
  assert.deepEqual(h.slice(0, 7), [1, -2.5, 65504, 2 ** -24, 1023 * 2 ** -24, -0, Infinity]);
  assert.ok(Object.is(h[5], -0));
  assert.ok(Number.isNaN(h[7]));
  assert.equal(tensors.b.storedDtype, "BF16");
  assert.deepEqual([...tensors.b.data], [1, -2.5, 65280, 2 ** -133, -Infinity]);
});

Deno.test("safetensors: I64 is narrowed to I32 when every value fits, else an error", () => {
  const vals = new BigInt64Array([0n, -1n, 2147483647n, -2147483648n]);
  const ok = build({ pos: { dtype: "I64", shape: [4], data_offsets: [0, 32] } }, bytesOf(vals));
  const { tensors } = readSafetensors(ok);
  assert.equal(tensors.pos.dtype, "I32");
  assert.equal(tensors.pos.storedDtype, "I64");
  assert.deepEqual([...tensors.pos.data], [0, -1, 2147483647, -2147483648]);
  for (const bad of [2147483648n, -2147483649n, 1n << 40n]) {
    const file = build(
      { pos: { dtype: "I64", shape: [2], data_offsets: [0, 16] } },
      bytesOf(new BigInt64Array([1n, bad])),
    );
    expectError(file, new RegExp(`tensor 'pos': I64 value ${bad} at index 1 does not fit`));
  }
});

Deno.test("safetensors: each kind of corruption gets its own error", () => {
  const entry = (o: Record<string, unknown> = {}) => ({
    wte: { dtype: "F32", shape: [2], data_offsets: [0, 8], ...o },
  });
  const eight = new Uint8Array(8);
  expectError(new Uint8Array(5), /file is 5 bytes, too short/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 200_000_000n, true);
  expectError(huge, /header size 200000000 exceeds the 100000000-byte limit/);
  expectError(build(entry(), eight).subarray(0, 20), /header size \d+ exceeds the 12 bytes/);
  const badUtf8 = build('{"a":1}');
  badUtf8[10] = 0xff;
  expectError(badUtf8, /header is not valid UTF-8/);
  expectError(build('{"wte": '), /header is not valid JSON/);
  expectError(build("[1, 2]"), /header is not a JSON object/);
  expectError(build({ wte: 3 }), /tensor 'wte' header entry is not a JSON object/);
  expectError(
    build({ wte: { dtype: "F32", shape: [0] } }),
    /tensor 'wte' header entry has no "data_offsets"/,
  );
  expectError(build(entry({ dtype: "Q4" }), eight), /tensor 'wte' has unsupported dtype "Q4"/);
  expectError(build(entry({ dtype: "toString" }), eight), /unsupported dtype "toString"/);
  expectError(build(entry({ shape: [-2] }), eight), /tensor 'wte' shape \[-2\] is not a list/);
  expectError(build(entry({ shape: [1.5] }), eight), /shape \[1.5\] is not a list/);
  expectError(build(entry({ shape: "2" }), eight), /shape "2" is not a list/);
  expectError(build(entry({ data_offsets: [0] }), eight), /data_offsets \[0\] are not two/);
  expectError(build(entry({ data_offsets: [8, 0] }), eight), /\[8, 0\] end before they begin/);
  expectError(
    build(entry({ data_offsets: [0, 12] }), eight),
    /^safetensors: tensor 'wte' data_offsets \[0, 12\] exceed the data section \(8 bytes\)$/,
  );
  expectError(build(entry({ shape: [3] }), eight), /shape \[3\] of F32 needs 12 bytes.*hold 8/);
  expectError(build(entry({ shape: [2 ** 40, 2 ** 40] }), eight), /needs .* bytes/);
  expectError(
    build({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "U8", shape: [4], data_offsets: [4, 8] },
    }, eight),
    /tensor 'b' data_offsets \[4, 8\] overlap tensor 'a' \[0, 8\]/,
  );
  expectError(build({ __metadata__: { v: 1 } }), /__metadata__ 'v' is a number, not a string/);
  expectError(build({ __metadata__: ["x"] }), /__metadata__ is not a JSON object/);
  expectError(build('{"__proto__": {"polluted": "yes"}}'), /'__proto__' is not allowed/);
  expectError(build('{"__metadata__": {"__proto__": "x"}}'), /key '__proto__' is not allowed/);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  expectError(build({ "bad\nname": 1 }), /tensor "bad\\nname" header entry/);
});

Deno.test("safetensors: the writer rejects what it cannot write", () => {
  const w = (t: NamedArray) => () => writeSafetensors({ t });
  const err = (p: RegExp) => (e: unknown) => e instanceof SafetensorsError && p.test(e.message);
  assert.throws(w({ dtype: "F16", shape: [1], data: new Float32Array(1) }), err(/cannot write/));
  assert.throws(w({ dtype: "F32", shape: [1], data: new Int32Array(1) }), err(/needs a Float32/));
  assert.throws(w({ dtype: "F32", shape: [2, 2], data: new Float32Array(3) }), err(/needs 4/));
  assert.throws(w({ dtype: "U8", shape: [-1], data: new Uint8Array(0) }), err(/non-negative/));
  assert.throws(
    () => writeSafetensors({}, { v: 1 } as unknown as Record<string, string>),
    err(/metadata 'v' must be a string/),
  );
});

/** xorshift32: a tiny deterministic PRNG for the fuzz test. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

Deno.test("safetensors: fuzzed files throw SafetensorsError or parse consistently", () => {
  const valid = writeSafetensors(sample(), { format: "pt" });
  const headerEnd = 8 + Number(new DataView(valid.buffer).getBigUint64(0, true));
  const rand = xorshift(20240229);
  const int = (n: number) => Math.floor(rand() * n);
  const digits = [...valid.subarray(0, headerEnd).keys()].filter((i) =>
    valid[i] >= 0x30 && valid[i] <= 0x39
  );
  let parsed = 0;
  for (let iter = 0; iter < 300; iter++) {
    let file = valid.slice();
    const mode = iter % 4;
    if (mode === 0) { // flip bytes anywhere
      for (let k = 1 + int(4); k > 0; k--) file[int(file.length)] ^= 1 << int(8);
    } else if (mode === 1) { // change a digit in the header (sizes, shapes, offsets)
      file[digits[int(digits.length)]] = 0x30 + int(10);
    } else if (mode === 2) { // truncate
      file = file.slice(0, int(file.length));
    } else { // flip a header byte and truncate
      file[int(headerEnd)] ^= 1 << int(8);
      file = file.slice(0, file.length - int(16));
    }
    try {
      const { tensors } = readSafetensors(file);
      parsed++;
      for (const [name, t] of Object.entries(tensors)) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        assert.equal(t.data.length, n, `${name}: length matches shape`);
        const ctor = { F32: Float32Array, I32: Int32Array, U8: Uint8Array, U32: Uint32Array }[
          t.dtype as "F32"
        ] ?? Float64Array;
        assert.ok(t.data instanceof ctor, `${name}: data matches dtype ${t.dtype}`);
      }
    } catch (e) {
      if (!(e instanceof SafetensorsError)) throw e;
      assert.doesNotMatch(e.message, /\p{Cc}/u, "one printable line");
    }
  }
  assert.ok(parsed > 0, "some mutations still parse");
});
