// The reader's stricter checks (issue 14): the data section must be tiled exactly by the tensors
// (no gaps, no trailing bytes: a header size one byte short used to shift every tensor), and a
// key repeated in any JSON object of the header is refused instead of "last one wins".

import assert from "node:assert/strict";
import {
  duplicateKey,
  readSafetensors,
  SafetensorsError,
  writeSafetensors,
} from "../../nn/safetensors.ts";

function build(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => readSafetensors(bytes), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("safetensors: gaps, trailing bytes and a shifted header start are refused", () => {
  const eight = new Uint8Array(8);
  const gap = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
  expectError(build(gap, eight), /bytes \[0, 4\) of the data section belong to no tensor/);
  const short = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  expectError(build(short, eight), /holds 8 bytes but the tensors cover 4: 4 trailing bytes/);
  // A header size one byte short of the padded header: the JSON still parses (the last pad
  // space is cut), every tensor would start one byte early. Must not load.
  const good = writeSafetensors({
    w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
  });
  const n = Number(new DataView(good.buffer).getBigUint64(0, true));
  assert.equal(good[8 + n - 1], 0x20, "the writer pads with spaces");
  const shifted = good.slice();
  new DataView(shifted.buffer).setBigUint64(0, BigInt(n - 1), true);
  expectError(shifted, /1 trailing bytes/);
  // Zero-length tensors anywhere are fine; the valid file still loads.
  const zero =
    '{"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],' +
    '"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}';
  assert.deepEqual(Object.keys(readSafetensors(build(zero, eight)).tensors), ["e", "a", "b"]);
  assert.deepEqual(readSafetensors(good).tensors.w.data, new Float32Array([1, 2]));
});

Deno.test("safetensors: a key repeated in any object of the header is refused", () => {
  const eight = new Uint8Array(8);
  const e = (o: number) => `{"dtype":"F32","shape":[2],"data_offsets":[${o},${o + 8}]}`;
  expectError(build(`{"a":${e(0)},"a":${e(0)}}`, eight), /header repeats the key 'a'/);
  expectError(
    build(`{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight),
    /repeats the key 'dtype'/,
  );
  expectError(
    build(`{"__metadata__":{"iteration":"1","iteration":"9"},"a":${e(0)}}`, eight),
    /repeats the key 'iteration'/,
  );
  // Escaped spellings of one key are the same key.
  expectError(build(`{"a":${e(0)},"\\u0061":${e(0)}}`, eight), /repeats the key 'a'/);
  // The same key in different objects, keys inside strings and arrays are fine.
  assert.equal(duplicateKey('{"a":{"a":1},"b":{"a":[{"a":2},{"a":3}]},"c":"\\"a\\":"}'), null);
  assert.equal(duplicateKey('{"x":["{\\"y\\":1,\\"y\\":2}"]}'), null);
  assert.equal(duplicateKey('{"x":1,"y":{"z":2},"x":3}'), "x");
});
