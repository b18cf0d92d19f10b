// The loss curve as a standalone SVG document (pure string generation, no dependencies):
// per-step training loss as a faint line, the evaluated train and val losses as solid lines
// with markers, axes with "nice" 1-2-5 ticks, labels and a legend.

/** A point of a curve: iteration and loss. */
export type CurvePoint = readonly [iter: number, loss: number];

/** The curves to draw; any may be empty. */
export interface LossCurves {
  /** Training loss of single batches (noisy), e.g. every log interval. */
  batch: readonly CurvePoint[];
  /** Estimated training loss at each evaluation. */
  train: readonly CurvePoint[];
  /** Estimated validation loss at each evaluation. */
  val: readonly CurvePoint[];
}

const W = 720;
const H = 420;
const M = { left: 64, right: 24, top: 44, bottom: 56 };
const COLORS = { batch: "#9ecae1", train: "#1f77b4", val: "#ff7f0e" };

/** Ticks at 1, 2 or 5 × 10^k covering [lo, hi], about `n` of them. */
export function niceTicks(lo: number, hi: number, n = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function tickLabel(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4) return a >= 1e6 ? `${+(v / 1e6).toPrecision(3)}M` : `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(4));
}

/** [min, max] of the finite values, padded so curves do not touch the frame. */
function range(values: number[], pad: number): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi === lo) [lo, hi] = [lo - 0.5, hi + 0.5];
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

/** The SVG document of the loss curves, titled `title`. */
export function lossPlotSvg(curves: LossCurves, title = "loss"): string {
  const all = [...curves.batch, ...curves.train, ...curves.val].filter(([, y]) =>
    Number.isFinite(y)
  );
  const [xLo, xHi] = all.length ? [0, Math.max(1, ...all.map(([x]) => x))] : [0, 1];
  const [yLo, yHi] = range(all.map(([, y]) => y), 0.05);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (x: number) => M.left + ((x - xLo) / (xHi - xLo)) * pw;
  const sy = (y: number) => M.top + (1 - (y - yLo) / (yHi - yLo)) * ph;
  const f = (v: number) => v.toFixed(1);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  ];
  for (const t of niceTicks(yLo, yHi, 8)) {
    if (t < yLo || t > yHi) continue;
    out.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${f(sy(t))}" y2="${f(sy(t))}" ` +
        `stroke="#e6e6e6"/>`,
      `<text x="${M.left - 6}" y="${f(sy(t) + 4)}" text-anchor="end">${tickLabel(t)}</text>`,
    );
  }
  for (const t of niceTicks(xLo, xHi, 7)) {
    out.push(
      `<line x1="${f(sx(t))}" x2="${f(sx(t))}" y1="${H - M.bottom}" y2="${H - M.bottom + 5}" ` +
        `stroke="#333"/>`,
      `<text x="${f(sx(t))}" y="${H - M.bottom + 18}" text-anchor="middle">${tickLabel(t)}</text>`,
    );
  }
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 14}" text-anchor="middle">iteration</text>`,
    `<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">` +
      `loss</text>`,
  );
  const line = (pts: readonly CurvePoint[], color: string, width: number, dots: boolean) => {
    const ok = pts.filter(([, y]) => Number.isFinite(y));
    if (ok.length > 1) {
      const d = ok.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ");
      out.push(
        `<polyline points="${d}" fill="none" stroke="${color}" stroke-width="${width}" ` +
          `stroke-linejoin="round"/>`,
      );
    }
    if (dots || ok.length === 1) {
      for (const [x, y] of ok) {
        out.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3" fill="${color}"/>`);
      }
    }
  };
  line(curves.batch, COLORS.batch, 1, false);
  line(curves.train, COLORS.train, 2, true);
  line(curves.val, COLORS.val, 2, true);
  const legend: [string, string, readonly CurvePoint[]][] = [
    ["train (batch)", COLORS.batch, curves.batch],
    ["train (eval)", COLORS.train, curves.train],
    ["val (eval)", COLORS.val, curves.val],
  ];
  let ly = M.top + 16;
  for (const [label, color, pts] of legend) {
    if (pts.length === 0) continue;
    const lx = W - M.right - 120;
    out.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" ` +
        `stroke-width="3"/>`,
      `<text x="${lx + 28}" y="${ly}">${label}</text>`,
    );
    ly += 18;
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}
