// Training progress on stderr: on a terminal one live line redrawn in place (iteration/total,
// loss, learning rate, ms per iteration, tokens/s, ETA); otherwise a plain line every
// `logInterval` iterations, so logs piped to a file stay readable. Also the lines that say why a
// first run's first step waits: the WebGPU backend compiling and timing matmul variants.

import type { Backend } from "../engine/backend.ts";
import { WebGpuBackend } from "../engine/webgpu/backend.ts";

/** What one finished iteration reports. */
export interface StepReport {
  /** Index of the iteration just finished (0-based, as the `step N` eval lines). */
  iter: number;
  /** The step's training loss. */
  loss: number;
  /** The learning rate used. */
  lr: number;
  /** Wall time of the step in milliseconds. */
  ms: number;
}

/** Where and how progress is shown. */
export interface ProgressOptions {
  /** Iterations of the whole run (`--max-iters`). */
  total: number;
  /** Tokens processed per iteration (batch size × block size). */
  tokensPerIter: number;
  /** Redraw one line in place (stderr is a terminal) or print plain lines. */
  isTTY: boolean;
  /** Iterations between plain lines. */
  logInterval: number;
  /** Writes raw text (default: stderr). */
  write?: (text: string) => void;
  /** Terminal width, to keep the live line on one row (default: 120). */
  columns?: number;
  /** Clock in milliseconds (tests pass a fake one). */
  now?: () => number;
}

const encoder = new TextEncoder();

function writeStderr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

/** "42s", "25m12s", "3h05m", "12d03h": short enough for a progress line. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const two = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

/** 950 → "950", 12345 → "12.3k", 2.5e6 → "2.50M". */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return "?";
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

/** The live/periodic progress display of a training run. */
export class Progress {
  readonly #o: Required<ProgressOptions>;
  #lineShown = false;
  #lastText = "";
  #lastDraw = -Infinity;
  #smoothMs = NaN;
  #first: { iter: number; t: number } | null = null;

  /** True when drawing a live line on a terminal. */
  get isTTY(): boolean {
    return this.#o.isTTY;
  }

  /** A display for a run of `total` iterations. */
  constructor(opts: ProgressOptions) {
    this.#o = {
      write: writeStderr,
      columns: 120,
      now: () => performance.now(),
      ...opts,
    };
  }

  /** Seconds left after iteration `iter`, from the wall time per iteration since the first. */
  eta(iter: number): number {
    if (!this.#first || iter <= this.#first.iter) return NaN;
    const perIter = (this.#o.now() - this.#first.t) / (iter - this.#first.iter);
    return ((this.#o.total - 1 - iter) * perIter) / 1000;
  }

  /** The progress text for a step (without line control characters). */
  format(r: StepReport): string {
    const tokPerSec = this.#o.tokensPerIter / (this.#smoothMs / 1000);
    const width = String(this.#o.total).length;
    return [
      `iter ${String(r.iter).padStart(width)}/${this.#o.total}`,
      `loss ${r.loss.toFixed(4)}`,
      `lr ${r.lr.toExponential(2)}`,
      `${this.#smoothMs.toFixed(0)} ms/it`,
      `${formatCount(tokPerSec)} tok/s`,
      `ETA ${formatDuration(this.eta(r.iter))}`,
    ].join(" | ");
  }

  /** Record a finished iteration and show it (live line, or a plain line every logInterval). */
  step(r: StepReport): void {
    // The first step includes one-off costs (pipeline compilation, caches): ETA starts after it.
    if (!this.#first) this.#first = { iter: r.iter, t: this.#o.now() };
    this.#smoothMs = r.ms; // already an average over the iterations since the last report
    const last = r.iter >= this.#o.total - 1;
    if (this.#o.isTTY) {
      const t = this.#o.now();
      if (!last && t - this.#lastDraw < 100) return;
      this.#lastDraw = t;
      this.#lastText = this.format(r).slice(0, Math.max(20, this.#o.columns - 1));
      this.#o.write(`\r\x1b[2K${this.#lastText}`);
      this.#lineShown = true;
    } else if (r.iter % this.#o.logInterval === 0 || last) {
      this.#o.write(this.format(r) + "\n");
    }
  }

  /** Print a whole line (e.g. an eval result) without garbling the live line. */
  log(line: string, write: (text: string) => void = this.#o.write): void {
    this.clear();
    write(line + "\n");
    this.redraw();
  }

  /** Erase the live line (before other output). */
  clear(): void {
    if (this.#o.isTTY && this.#lineShown) this.#o.write("\r\x1b[2K");
    this.#lineShown = false;
  }

  /** Show the live line again after `clear()`. */
  redraw(): void {
    if (this.#o.isTTY && this.#lastText && !this.#lineShown) {
      this.#o.write(`\r\x1b[2K${this.#lastText}`);
      this.#lineShown = true;
    }
  }

  /** End the display: leave the last live line on screen and move to a new line. */
  finish(): void {
    if (this.#o.isTTY && this.#lineShown) this.#o.write("\n");
    this.#lineShown = false;
  }
}

/**
 * Report the WebGPU backend's matmul autotuning through `log` (a line at a time): when timing
 * starts (it compiles every candidate kernel, so it is the long wait of a first run on an
 * adapter), when it ends, and once that decisions of an earlier run are reused. No-op for
 * other backends.
 */
export function watchKernels(backend: Backend, log: (line: string) => void): void {
  if (!(backend instanceof WebGpuBackend)) return;
  let reuseShown = false;
  backend.tuner.onProgress = (p) => {
    switch (p.phase) {
      case "restored":
        if (!reuseShown) log("kernels: reusing matmul tuning decisions of an earlier run");
        reuseShown = true;
        break;
      case "start":
        log(
          `kernels: compiling and timing matmul variants for ${p.total} shape ` +
            `class${p.total === 1 ? "" : "es"} (first run on this adapter only) ...`,
        );
        break;
      case "key":
        break;
      case "end":
        log(`kernels: tuned in ${formatDuration(p.ms / 1000)}; later runs reuse the decisions`);
        break;
      default:
        p satisfies never;
    }
  };
}
