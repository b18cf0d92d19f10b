// The browser bundle in a real browser: `deno bundle --platform browser web.ts`, served on
// 127.0.0.1 to headless Chromium, trains a nano BitGPT and generates from it, once on WebGPU
// (`--enable-unsafe-webgpu`: Chromium's SwiftShader adapter) and once where the page has no
// adapter (the wasm fallback of `useBackend("auto")`); both runs start from the same loss; and a
// page that loads itself again reuses the matmul tuning the first load kept in localStorage.
// Pages post their results back to the server. Skipped where Chromium is not installed (Debian:
// `apt-get install chromium`; .ci/run installs it).

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { CONFIG, report, ROOT, runDeno } from "./subprocess.ts";

/** The first Chromium executable found on PATH, or null. */
async function findChromium(): Promise<string | null> {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      const out = await new Deno.Command(name, {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      })
        .output();
      if (out.code === 0) return name;
    } catch {
      // not installed
    }
  }
  return null;
}

const chromium = await findChromium();
if (!chromium) console.log("browser test skipped: no chromium on PATH (apt-get install chromium)");

/** The page's script: train, generate, post the result (or the error) to /result. */
const PAGE = `
const report = (obj) => fetch("/result", { method: "POST", body: JSON.stringify(obj) });
try {
  const lib = await import("./web.js");
  const params = new URLSearchParams(location.search);
  const be = await lib.useBackend(params.get("backend"), true);
  if (params.get("mode") === "tune") {
    await lib.matmul(lib.randn([256, 256]), lib.randn([256, 256])).data();
    await report({ restored: be.tuner.restored, tuned: be.tuning().length });
    // Load the page again: a fresh module instance that only localStorage links to this one.
    if (!params.has("again")) location.replace(location.href + "&again=1");
  }
  const text = "To be, or not to be, that is the question. ".repeat(40);
  const tok = lib.CharTokenizer.fromText(text);
  const nano = lib.getPreset("nano");
  const losses = [];
  const { model } = await lib.train({
    kind: "bitgpt",
    config: { ...nano.model, vocabSize: tok.vocabSize },
    data: lib.splitTokens(tok.encode(text)),
    train: { ...nano.train, maxIters: 40, evalInterval: 1000, evalIters: 1, learningRate: 3e-3 },
    onStep: ({ loss }) => losses.push(loss),
  });
  const [ids] = await lib.generate(model, tok.encode("To be"), { maxNewTokens: 20, temperature: 0 });
  await report({ backend: be.describe(), losses, text: "To be" + tok.decode(ids) });
} catch (e) {
  await report({ error: String(e?.stack ?? e) });
}
`;

/** What the page posted. */
interface PageResult {
  restored?: number;
  tuned?: number;
  backend?: string;
  losses?: number[];
  text?: string;
  error?: string;
}

/** Chromium's flags for a closed network, a fresh profile and root (no sandbox). */
function chromiumArgs(profile: string, url: string, webgpu: boolean): string[] {
  return [
    "--headless=new",
    "--no-sandbox",
    ...["--disable-background-networking", "--disable-component-update", "--disable-sync"],
    ...["--no-first-run", "--disable-quic", `--user-data-dir=${profile}`],
    ...(webgpu ? ["--enable-unsafe-webgpu"] : []),
    url,
  ];
}

/** End Chromium: SIGTERM lets it end (and reap) its helper processes; SIGKILL after 5 s. */
async function stop(browser: Deno.ChildProcess): Promise<void> {
  browser.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), 5000)));
  if (await Promise.race([browser.status, late]) === "late") browser.kill("SIGKILL");
  clearTimeout(timer);
  await browser.status;
}

/**
 * Remove the test's folder. Chromium's helper processes (crash handler, GPU process) may still
 * write into a profile for a moment after the browser itself has ended, so a removal that meets
 * a folder filling up again is retried for up to 5 s.
 */
async function removeDir(dir: string): Promise<void> {
  for (let i = 0;; i++) {
    try {
      return await Deno.remove(dir, { recursive: true });
    } catch (e) {
      if (i >= 50 || !(e instanceof Error) || !/not empty|os error 39/i.test(e.message)) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Serves the page and the bundle; each visit opens headless Chromium and awaits the result. */
class PageServer {
  #ac = new AbortController();
  #results: PageResult[] = [];
  #wanted = 1;
  #deliver: ((r: PageResult[]) => void) | null = null;
  #server: Deno.HttpServer<Deno.NetAddr>;

  constructor(readonly dir: string) {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: this.#ac.signal, onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  async #handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    if (req.method === "POST" && path === "/result") {
      this.#results.push(await req.json());
      if (this.#results.length >= this.#wanted) this.#deliver?.(this.#results);
      return new Response("ok");
    }
    if (path === "/") {
      const html = `<!doctype html><meta charset="utf-8"><script type="module">${PAGE}</script>`;
      return new Response(html, { headers: { "content-type": "text/html" } });
    }
    if (path === "/web.js") {
      const js = await Deno.readFile(`${this.dir}/web.js`);
      return new Response(js, { headers: { "content-type": "text/javascript" } });
    }
    return new Response("not found", { status: 404 });
  }

  /** Open `/?query` in headless Chromium with a fresh profile and wait for its result. */
  async visit(query: string, webgpu: boolean): Promise<PageResult> {
    return (await this.visits(query, webgpu, 1))[0];
  }

  /** Open `/?query` and wait for `count` posted results (the page may load itself again). */
  async visits(query: string, webgpu: boolean, count: number): Promise<PageResult[]> {
    const ms = 40_000;
    this.#results = [];
    this.#wanted = count;
    const posted = new Promise<PageResult[]>((resolve) => (this.#deliver = resolve));
    const profile = await Deno.makeTempDir({ dir: this.dir, prefix: "profile_" });
    const url = `http://127.0.0.1:${this.#server.addr.port}/?${query}`;
    const browser = new Deno.Command(chromium!, {
      args: chromiumArgs(profile, url, webgpu),
      stdout: "null",
      stderr: "null",
    }).spawn();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<PageResult[]>((resolve) => {
        timer = setTimeout(
          () => resolve([...this.#results, { error: `no result within ${ms / 1000}s` }]),
          ms,
        );
      });
      return await Promise.race([posted, timeout]);
    } finally {
      clearTimeout(timer);
      await stop(browser);
    }
  }

  async close(): Promise<void> {
    this.#ac.abort();
    await this.#server.finished;
  }
}

Deno.test({
  name: "headless Chromium: the web bundle trains and generates on WebGPU and on wasm",
  ignore: chromium === null, // no chromium on PATH (Debian: apt-get install chromium)
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "bitgpt_browser_" });
    const pages = new PageServer(dir);
    try {
      const entry = new URL("web.ts", ROOT).pathname;
      const b = await runDeno([
        ...["bundle", "--config", CONFIG, "--platform", "browser", "--minify"],
        ...[entry, "-o", `${dir}/web.js`],
      ]);
      strictEqual(b.code, 0, report(b));
      const runs: Record<string, PageResult> = {};
      const cases = [["webgpu", "webgpu", true], ["wasm", "auto", false]] as const;
      for (const [name, backend, webgpu] of cases) {
        await t.step(`${name}${webgpu ? " (SwiftShader)" : " fallback (no adapter)"}`, async () => {
          const r = await pages.visit(`backend=${backend}`, webgpu);
          ok(!r.error, r.error);
          ok(r.backend!.startsWith(name === "webgpu" ? "webgpu: " : "wasm"), r.backend);
          const losses = r.losses!;
          ok(losses.length >= 4, `${losses}`);
          ok(losses.at(-1)! < losses[0] - 0.5, `the loss did not fall: ${losses}`);
          ok(r.text!.startsWith("To be") && r.text!.length > "To be".length + 10, r.text);
          runs[name] = r;
        });
      }
      await t.step("webgpu: the page loaded again reuses its stored tuning", async () => {
        deepStrictEqual(await pages.visits("backend=webgpu&mode=tune", true, 2), [
          { restored: 0, tuned: 1 },
          { restored: 1, tuned: 0 },
        ]);
      });
      if (runs.webgpu && runs.wasm) {
        // The same initial loss (same seed and weights); later ones may part, as BitLinear's
        // rounding to ternary and int8 levels turns float-rounding differences into others.
        const [g, c] = [runs.webgpu.losses![0], runs.wasm.losses![0]];
        ok(Math.abs(g - c) < 1e-3, `initial loss: webgpu ${g}, wasm ${c}`);
      }
    } finally {
      await pages.close();
      await removeDir(dir);
    }
  },
});
