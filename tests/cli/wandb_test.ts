// `train --wandb-log true` as a user runs it (the deno.json task's permissions): the W&B SDK runs
// in its own process with its own lockfile, so the project's deno.lock does not change; an
// unreachable server costs one warning line (no deprecation warning, no stack); and against a
// fake W&B server on 127.0.0.1 (its GraphQL and file_stream endpoints, as the pinned SDK calls
// them) the run's metrics arrive and the run is marked complete.

import { ok, strictEqual } from "node:assert/strict";
import { runCli, writeSlice } from "./cli_util.ts";
import { WANDB_LOCK } from "../../cli/wandb.ts";

const LOCK = new URL("../../deno.lock", import.meta.url);

/** Is the pinned SDK in Deno's cache, or can it be fetched (npm reachable)? */
const sdkAvailable = (await new Deno.Command(Deno.execPath(), {
  args: ["cache", "--quiet", "--no-config", `--lock=${WANDB_LOCK.pathname}`, "--frozen"]
    .concat("npm:@wandb/sdk@0.5.1"),
  stdout: "null",
  stderr: "null",
}).output()).code === 0;

/** A 4-iteration nano run on a slice of tiny Shakespeare in a fresh directory. */
async function tinyRun(env: Record<string, string>) {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_wandb_" });
  try {
    const dataset = await writeSlice(dir, 20000);
    return await runCli(
      [
        ...["train", "--preset", "nano", "--tokenizer", "char", "--dataset", dataset],
        ...["--out-dir", dir, "--backend", "cpu", "--max-iters", "4", "--eval-interval", "2"],
        ...["--eval-iters", "1", "--log-interval", "1", "--wandb-log", "true"],
      ],
      undefined,
      env,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("wandb: an unreachable server is one warning line, and deno.lock is unchanged", async () => {
  const before = await Deno.readTextFile(LOCK);
  const r = await tinyRun({ WANDB_API_KEY: "x".repeat(40), WANDB_BASE_URL: "http://127.0.0.1:9" });
  strictEqual(r.code, 0, r.stderr);
  const noise = r.stderr.split("\n").filter((l) => /wandb|W&B|Deprecat|^\s+at |Error/i.test(l));
  strictEqual(noise.length, 1, r.stderr);
  ok(
    /^warning: --wandb-log: W&B is not usable \(.+\); logging to metrics.jsonl only$/.test(
      noise[0],
    ),
  );
  strictEqual(await Deno.readTextFile(LOCK), before, "deno.lock changed");
});

/** The answers the SDK needs from W&B's GraphQL endpoint. */
function graphql(query: string): unknown {
  if (query.includes("query Viewer")) {
    return { viewer: { id: "v", entity: "tester", flags: "{}", teams: { edges: [] } } };
  }
  if (query.includes("mutation UpsertBucket")) {
    const project = { id: "p", name: "bitGPT", entity: { id: "e", name: "tester" } };
    const bucket = { id: "b", name: "run1", displayName: "run1", description: "", project };
    return {
      upsertBucket: { bucket: { ...bucket, config: "{}", sweepName: null }, inserted: true },
    };
  }
  return {};
}

Deno.test({
  name: "wandb: against a fake W&B server the metrics arrive and the run completes",
  ignore: !sdkAvailable, // the pinned SDK is neither cached nor downloadable here
  async fn() {
    const history: Record<string, number>[] = [];
    let complete = false;
    const ac = new AbortController();
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
      async (req) => {
        const body = await req.json();
        if (new URL(req.url).pathname === "/graphql") {
          return Response.json({ data: graphql(body.query) });
        }
        const rows = body.files?.["wandb-history.jsonl"]?.content ?? [];
        history.push(...rows.map((l: string) => JSON.parse(l)));
        complete ||= body.complete === true;
        return Response.json({});
      },
    );
    try {
      const env = {
        WANDB_API_KEY: "x".repeat(40),
        WANDB_BASE_URL: `http://127.0.0.1:${server.addr.port}`,
      };
      const r = await tinyRun(env);
      strictEqual(r.code, 0, r.stderr);
      ok(/^wandb: logging to /m.test(r.stderr), r.stderr);
      ok(!/warning: --wandb-log/.test(r.stderr), r.stderr);
      ok(history.some((h) => Number.isFinite(h["val/loss"])), JSON.stringify(history));
      ok(complete, "the run was not marked complete");
    } finally {
      ac.abort();
      await server.finished;
    }
  },
});
