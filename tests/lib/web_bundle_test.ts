// The browser entry web.ts: it offers everything mod.ts does except file access, `deno bundle
// --platform browser` turns it into one JavaScript file with no `Deno.` in it, and that file,
// imported with no permissions at all, trains a nano GPT step on the CPU backend.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import * as lib from "../../mod.ts";
import * as web from "../../web.ts";
import { CONFIG, losses, report, ROOT, runDeno } from "./subprocess.ts";

// What mod.ts has beyond web.ts: data/datasets.ts, data/token_cache.ts and loadDataset.
const FILE_ACCESS = [
  "KNOWN_DATASETS",
  "cacheKey",
  "decodeText",
  "decodeTokenFile",
  "encodeTokenFile",
  "encodeWithCache",
  "envDataDir",
  "loadDataset",
  "readDatasetText",
  "resolveDataset",
];

Deno.test("web.ts exports everything mod.ts does except file access", () => {
  const webNames = new Set(Object.keys(web));
  deepStrictEqual(Object.keys(lib).filter((k) => !webNames.has(k)).sort(), FILE_ACCESS);
  for (const k of webNames) {
    strictEqual((web as Record<string, unknown>)[k], (lib as Record<string, unknown>)[k], k);
  }
});

const bundleAvailable = (await runDeno(["bundle", "--help"])).code === 0;

const SCRIPT = `
import { AdamW, createModel, getPreset, tensor, useBackend } from "./web.js";
await useBackend("cpu");
const { model: config } = getPreset("nano");
const model = createModel("gpt", config);
const B = 2, T = 16, ids = new Int32Array(B * (T + 1));
for (let i = 0; i < ids.length; i++) ids[i] = (i * 7 + 3) % config.vocabSize;
const x = tensor(ids.subarray(0, B * T), [B, T], { dtype: "i32" });
const y = tensor(ids.subarray(1, B * T + 1), [B, T], { dtype: "i32" });
const { loss } = model.forward(x, y);
loss.backward();
new AdamW(model, { lr: 1e-3 }).step();
console.log("loss", await loss.item());
`;

Deno.test({
  name: "web.ts bundles for the browser without Deno.* and the bundle trains a step",
  ignore: !bundleAvailable, // `deno bundle` is missing from this Deno build
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "bitgpt_bundle_" });
    try {
      const out = `${dir}/web.js`;
      const entry = new URL("web.ts", ROOT).pathname;
      const b = await runDeno([
        "bundle",
        "--config",
        CONFIG,
        "--platform",
        "browser",
        entry,
        "-o",
        out,
      ]);
      strictEqual(b.code, 0, report(b));
      const js = await Deno.readTextFile(out);
      const uses = js.split("\n").filter((l) => /\bDeno\./.test(l)).slice(0, 5);
      deepStrictEqual(uses, [], "the browser bundle references Deno.*");
      ok(
        !/\bimport\(/.test(js),
        "the bundle still has a dynamic import a page would have to serve",
      );
      await Deno.writeTextFile(`${dir}/main.js`, SCRIPT);
      const r = await runDeno(["run", "--no-config", "--no-lock", `${dir}/main.js`], { cwd: dir });
      strictEqual(r.code, 0, report(r));
      const [loss] = losses(r.stdout);
      ok(Number.isFinite(loss) && loss > 0, `expected a finite loss\n${report(r)}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
