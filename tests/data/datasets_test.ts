// Tests for data/datasets.ts: lookup order ($BITGPT_DATA_DIR, ./data, download), downloads
// through a fake fetch, offline errors, and refusing empty or non-UTF-8 files.

import assert from "node:assert/strict";
import { decodeText, envDataDir, readDatasetText, resolveDataset } from "../../data/datasets.ts";
import { DataError } from "../../data/errors.ts";
import { withTempDir } from "./util.ts";

/** A fetch that serves `body` (or fails) and counts its calls. */
function fakeFetch(body: string | Error, status = 200): typeof fetch & { calls: string[] } {
  const calls: string[] = [];
  const f = (input: RequestInfo | URL) => {
    calls.push(String(input));
    if (body instanceof Error) return Promise.reject(body);
    return Promise.resolve(new Response(body, { status }));
  };
  return Object.assign(f as typeof fetch, { calls });
}

async function rejectsData(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("datasets: a name is found in the data dir first, then the local dir", async () => {
  await withTempDir(async (tmp) => {
    const [shared, local] = [`${tmp}/shared`, `${tmp}/local`];
    await Deno.mkdir(shared);
    await Deno.mkdir(local);
    await Deno.writeTextFile(`${shared}/shakespeare.txt`, "shared copy");
    await Deno.writeTextFile(`${local}/shakespeare.txt`, "local copy");
    const fetch = fakeFetch(new Error("offline"));
    const opts = { dataDir: shared, localDir: local, fetch };
    assert.equal(await resolveDataset("shakespeare", opts), `${shared}/shakespeare.txt`);
    await Deno.remove(`${shared}/shakespeare.txt`);
    assert.equal(await resolveDataset("shakespeare", opts), `${local}/shakespeare.txt`);
    assert.equal(
      await resolveDataset("shakespeare", { ...opts, dataDir: null }),
      `${local}/shakespeare.txt`,
    );
    assert.equal(fetch.calls.length, 0);
  });
});

Deno.test("datasets: a missing named dataset is downloaded once into the local dir", async () => {
  await withTempDir(async (tmp) => {
    const local = `${tmp}/data`; // created by the download
    const fetch = fakeFetch("First Citizen:\n");
    const path = await resolveDataset("astro", { dataDir: `${tmp}/none`, localDir: local, fetch });
    assert.equal(path, `${local}/astro.txt`);
    assert.equal(await Deno.readTextFile(path), "First Citizen:\n");
    assert.deepEqual(fetch.calls, [
      "https://raw.githubusercontent.com/bananya-ml/BitGPT/main/data/astro.txt",
    ]);
    assert.deepEqual([...Deno.readDirSync(local)].map((e) => e.name), ["astro.txt"]); // no temp file
    await resolveDataset("astro", { dataDir: null, localDir: local, fetch });
    assert.equal(fetch.calls.length, 1);
  });
});

Deno.test("datasets: offline or failed downloads say where to put the file", async () => {
  await withTempDir(async (tmp) => {
    const opts = { dataDir: `${tmp}/shared`, localDir: `${tmp}/local` };
    await rejectsData(
      resolveDataset("shakespeare", { ...opts, fetch: fakeFetch(new TypeError("dns error")) }),
      /shakespeare.txt is not in .* and downloading .* failed \(dns error\); put the file at .*local\/shakespeare.txt/,
    );
    await rejectsData(
      resolveDataset("shakespeare", { ...opts, fetch: fakeFetch("nope", 404) }),
      /failed \(HTTP 404/,
    );
    await rejectsData(
      resolveDataset("shakespeare", { ...opts, fetch: fakeFetch("") }),
      /failed \(the server sent an empty file\)/,
    );
    await rejectsData(
      resolveDataset("shakespeare", { ...opts, download: false }),
      /download https/,
    );
    const left = [...Deno.readDirSync(tmp)].map((e) => e.name);
    assert.deepEqual(left, [], "nothing written when the download fails");
  });
});

Deno.test("datasets: any other value is a path that must exist", async () => {
  await withTempDir(async (tmp) => {
    await Deno.writeTextFile(`${tmp}/my.txt`, "hi");
    assert.equal(await resolveDataset(`${tmp}/my.txt`), `${tmp}/my.txt`);
    await rejectsData(
      resolveDataset(`${tmp}/missing.txt`),
      /dataset '.*missing.txt' not found: give 'shakespeare' or 'astro', or the path/,
    );
    await rejectsData(resolveDataset(tmp), /not found/); // a directory is not a text file
  });
});

Deno.test("datasets: $BITGPT_DATA_DIR is read from the environment", () => {
  const before = Deno.env.get("BITGPT_DATA_DIR");
  try {
    Deno.env.set("BITGPT_DATA_DIR", "/some/dir");
    assert.equal(envDataDir(), "/some/dir");
    Deno.env.delete("BITGPT_DATA_DIR");
    assert.equal(envDataDir(), undefined);
  } finally {
    if (before === undefined) Deno.env.delete("BITGPT_DATA_DIR");
    else Deno.env.set("BITGPT_DATA_DIR", before);
  }
});

Deno.test("datasets: empty files, invalid UTF-8 and unreadable files are errors", async () => {
  assert.throws(() => decodeText(new Uint8Array(0), "e.txt"), /'e.txt' is empty/);
  const bad = new Uint8Array([0x61, 0x62, 0xc3, 0xa9, 0xff, 0x63]);
  assert.throws(
    () => decodeText(bad, "b.txt"),
    (e: unknown) =>
      e instanceof DataError &&
      /'b.txt' is not valid UTF-8 \(first bad byte at offset 4\)/.test(e.message),
  );
  const cut = new TextEncoder().encode("ok é").subarray(0, 4); // ends inside 'é'
  assert.throws(() => decodeText(cut, "c.txt"), /the file ends inside a character/);
  assert.equal(decodeText(new TextEncoder().encode("ok é"), "d.txt"), "ok é");
  await withTempDir(async (tmp) => {
    await Deno.writeFile(`${tmp}/empty.txt`, new Uint8Array(0));
    await rejectsData(readDatasetText(`${tmp}/empty.txt`), /is empty/);
    await rejectsData(readDatasetText(`${tmp}/nope.txt`), /cannot read dataset file/);
  });
});
