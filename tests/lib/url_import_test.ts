// mod.ts works when imported from a URL: the repository is served over HTTP on 127.0.0.1 and a
// subprocess whose only permissions are --allow-import and --allow-net for that address (no
// config, no import map) builds a nano GPT, takes one AdamW step on the CPU and prints the loss.

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

Deno.test("mod.ts imports from a URL with only import/net permissions and trains a step", async () => {
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
  const host = `127.0.0.1:${server.addr.port}`;
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/main.ts`;
    await Deno.writeTextFile(script, SCRIPT(`http://${host}/`));
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        "--no-lock",
        `--allow-import=${host}`,
        `--allow-net=${host}`,
        script,
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    strictEqual(out.code, 0, `subprocess failed:\n${stderr}`);
    const loss = Number(stdout.match(/loss ([-\d.e+]+)/)?.[1]);
    ok(Number.isFinite(loss) && loss > 0, `expected a finite loss, got: ${stdout}`);
  } finally {
    ac.abort();
    await server.finished;
    await Deno.remove(dir, { recursive: true });
  }
});
