// The stop signals of a training run (cli/interrupt.ts) in an idle process, where every copy of
// a signal is delivered on its own: two SIGINTs 30 ms apart (a terminal's Ctrl-C and the copy
// `deno task` forwards) are one stop request; a later, separate SIGINT quits with exit 130;
// SIGTERM asks for the same stop.

import { ok, strictEqual } from "node:assert/strict";

const FIXTURE = new URL("./interrupt_fixture.ts", import.meta.url).pathname;

async function start() {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", FIXTURE],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return out;
      out += value;
    }
  })();
  const stderr = new Response(child.stderr).text();
  return { child, output: async () => ({ out: await rest, err: await stderr }) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name: "interrupts: copies within the window are one stop; a separate signal quits with 130",
  ignore: Deno.build.os === "windows",
  async fn() {
    const { child, output } = await start();
    child.kill("SIGINT");
    await sleep(30);
    child.kill("SIGINT");
    await sleep(700);
    child.kill("SIGINT");
    const status = await child.status;
    const { out, err } = await output();
    strictEqual(status.code, 130, out + err);
    strictEqual(out.match(/stop SIGINT/g)?.length, 1, out);
    ok(err.includes("interrupt (SIGINT) again: quitting now"), err);
  },
});

Deno.test({
  name: "interrupts: SIGTERM asks for the same stop, and the process carries on to its end",
  ignore: Deno.build.os === "windows",
  async fn() {
    const { child, output } = await start();
    child.kill("SIGTERM");
    await sleep(20);
    child.kill("SIGTERM");
    const status = await child.status;
    const { out } = await output();
    strictEqual(status.code, 0);
    strictEqual(out.match(/stop SIGTERM/g)?.length, 1, out);
  },
});
