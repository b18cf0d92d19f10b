// The deno.json tasks ask for least privilege, and the README says why each permission is there.
// (The end-to-end CLI tests run with exactly these flags: cli_util.ts reads them from deno.json.)

import { deepStrictEqual, ok } from "node:assert/strict";
import { taskPermissions } from "./cli_util.ts";

const README = await Deno.readTextFile(new URL("../../README.md", import.meta.url));

Deno.test("generate asks only to read; train scopes env, net, sys and may start only deno", () => {
  deepStrictEqual(taskPermissions("generate"), ["--allow-read"]);
  deepStrictEqual(taskPermissions("train"), [
    "--allow-read",
    "--allow-write",
    "--allow-env=BITGPT_DATA_DIR,WANDB_API_KEY",
    "--allow-net=raw.githubusercontent.com",
    "--allow-run=deno",
    "--allow-sys=systemMemoryInfo",
  ]);
});

Deno.test("the README's permissions table names every permission of train and generate", () => {
  for (const task of ["train", "generate"]) {
    for (const flag of taskPermissions(task)) {
      ok(README.includes(`| \`${flag}\``), `README does not explain ${task}'s ${flag}`);
    }
  }
});
