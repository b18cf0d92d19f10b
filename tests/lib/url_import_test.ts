// mod.ts works when imported from a URL: the repository is served over HTTP on 127.0.0.1 and a
// subprocess whose only permissions are --allow-import and --allow-net for that address (no
// config, no import map) builds a nano GPT, takes one AdamW step on the CPU and prints the loss;
// and `deno check --all` of that script, which type-checks our remote modules under Deno's
// default libraries (not the project's compilerOptions), passes.

import { ok, strictEqual } from "node:assert/strict";

const root = new URL("../../", import.meta.url);

function contentType(path: string): string {
  if (path.endsWith(".ts")) return "application/typescript; charset=utf-8";
  if (path.endsWith(".json")) return "application/json";
  return "text/plain";
}

const SCRIPT = (base: string) => `
import { AdamW, createModel, getPreset, tensor, useBackend } from "${base}mod.ts";
await useBackend("cpu");
const { model: config } = getPreset("nano");
const model = createModel("gpt", config);
const B = 2, T = 16, ids = new Int32Array(B * (T + 1));
for (let i = 0; i < ids.length; i++) ids[i] = (i * 7 + 3) % config.vocabSize;
const x = tensor(ids.subarray(0, B * T), [B, T], { dtype: "i32" });
const y = tensor(ids.subarray(1, B * T + 1), [B, T], { dtype: "i32" });
const opt = new AdamW(model, { lr: 1e-3 });
const { loss } = model.forward(x, y);
loss.backward();
opt.step();
console.log("loss", await loss!.item());
`;

/** Serve the repository on 127.0.0.1 for one callback, which gets the host and a temp dir. */
async function withServedRepo(fn: (host: string, dir: string) => Promise<void>): Promise<void> {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname).replace(/^\/+/, "");
      if (path.includes("..")) return new Response("no", { status: 403 });
      try {
        const body = await Deno.readFile(new URL(path, root));
        return new Response(body, { headers: { "content-type": contentType(path) } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  const dir = await Deno.makeTempDir();
  try {
    await fn(`127.0.0.1:${server.addr.port}`, dir);
  } finally {
    ac.abort();
    await server.finished;
    await Deno.remove(dir, { recursive: true });
  }
}

/** `deno <args>` in `cwd` with no config and no lockfile, as a URL user runs it. */
async function denoNoConfig(args: string[], cwd: string) {
  const [command, ...rest] = args;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [command, "--no-config", "--no-lock", ...rest],
    cwd,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("mod.ts imports from a URL with only import/net permissions and trains a step", async () => {
  await withServedRepo(async (host, dir) => {
    const script = `${dir}/main.ts`;
    await Deno.writeTextFile(script, SCRIPT(`http://${host}/`));
    const r = await denoNoConfig(
      ["run", `--allow-import=${host}`, `--allow-net=${host}`, script],
      dir,
    );
    strictEqual(r.code, 0, `subprocess failed:\n${r.stderr}`);
    const loss = Number(r.stdout.match(/loss ([-\d.e+]+)/)?.[1]);
    ok(Number.isFinite(loss) && loss > 0, `expected a finite loss, got: ${r.stdout}`);
  });
});

Deno.test("deno check --all of a URL import passes under Deno's default libraries", async () => {
  await withServedRepo(async (host, dir) => {
    const script = `${dir}/main.ts`;
    await Deno.writeTextFile(
      script,
      SCRIPT(`http://${host}/`) + `import * as web from "http://${host}/web.ts";\nweb.tensor;\n`,
    );
    const r = await denoNoConfig(["check", "--all", `--allow-import=${host}`, script], dir);
    strictEqual(r.code, 0, `deno check --all failed:\n${r.stderr}`);
  });
});
