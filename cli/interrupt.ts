// Ctrl-C and SIGTERM during training (issue 14). The first signal, however many copies arrive
// together, stops the run after the step in progress (an evaluation is abandoned between
// batches) so that a resumable checkpoint is saved and the command exits 130; only a later,
// separate signal quits at once. Signals are handled in a Worker (cli/interrupt_worker.ts), so
// the quit works even while the main thread is busy in a long step.

import type { InterruptSetup } from "./interrupt_worker.ts";

/** Signals this close to the first are copies of it (a terminal's and `deno task`'s). */
export const COPY_WINDOW_MS = 500;

/** A listener for the run's stop signals; `close()` when the run is over. */
export class Interrupts {
  private constructor(readonly worker: Worker, readonly stop: AbortController) {}

  /** Start listening: `signal` aborts at the first SIGINT or SIGTERM. */
  static async start(announce = true): Promise<Interrupts> {
    const worker = new Worker(new URL("./interrupt_worker.ts", import.meta.url), {
      type: "module",
    });
    const stop = new AbortController();
    const ready = new Promise<void>((resolve, reject) => {
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`interrupt worker: ${e.message}`));
      };
      worker.onmessage = (e: MessageEvent<{ ready?: true; stop?: string; quit?: true }>) => {
        if (e.data.ready) resolve();
        if (e.data.stop) stop.abort(e.data.stop);
        if (e.data.quit) Deno.exit(130);
      };
    });
    worker.postMessage({ copyWindowMs: COPY_WINDOW_MS, announce } satisfies InterruptSetup);
    await ready;
    return new Interrupts(worker, stop);
  }

  /** Aborted once a stop was asked for. */
  get signal(): AbortSignal {
    return this.stop.signal;
  }

  /** Stop listening (signals get their default action again). */
  close(): void {
    this.worker.terminate();
  }
}
