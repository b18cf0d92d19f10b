// The signal side of cli/interrupt.ts, in a Worker so that signals are seen at once even while
// the main thread computes a step or waits on the GPU. The first SIGINT or SIGTERM (and copies
// arriving within the copy window: `deno task` forwards the terminal's Ctrl-C to a child that
// already got it) asks the main thread to stop; a later, separate one quits the process now.

/// <reference lib="deno.worker" />

/** Message from the main thread: start listening. */
export interface InterruptSetup {
  /** Signals within this many milliseconds of the first are copies of it. */
  copyWindowMs: number;
  /** Say on stderr what happens (false in tests that read stderr themselves). */
  announce: boolean;
}

const encoder = new TextEncoder();

function say(text: string): void {
  const clear = Deno.stderr.isTerminal() ? "\r\x1b[2K" : ""; // over the live progress line
  Deno.stderr.writeSync(encoder.encode(`${clear}${text}\n`));
}

self.onmessage = (e: MessageEvent<InterruptSetup>) => {
  const { copyWindowMs, announce } = e.data;
  let first: number | null = null;
  const onSignal = (signal: Deno.Signal) => {
    const now = performance.now();
    if (first === null) {
      first = now;
      if (announce) {
        say(
          `interrupt (${signal}): finishing this step, then saving a checkpoint; press Ctrl-C ` +
            `again to quit at once and lose the step`,
        );
      }
      self.postMessage({ stop: signal });
    } else if (now - first >= copyWindowMs) {
      say(`interrupt (${signal}) again: quitting now; the last saved checkpoint is kept`);
      // Deno.exit here would end only this worker. With no listener left the signal's default
      // action is back: raise it again, and the process ends at once, busy main thread or not.
      for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
      try {
        Deno.kill(Deno.pid, signal);
      } catch {
        self.postMessage({ quit: true }); // the main thread exits when it next gets a turn
      }
    }
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const handlers = signals.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  self.postMessage({ ready: true });
};
