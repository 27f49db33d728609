import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PNG } from 'pngjs';
import { GLYPH_HEIGHT, GLYPH_WIDTH, glyphRows } from './font';

type RGB = readonly [number, number, number];

const BLACK: RGB = [0, 0, 0];
const AXIS: RGB = [90, 90, 90];
const GRID: RGB = [232, 232, 232];
const TEXT: RGB = [30, 30, 30];

/** A white RGBA image with the few drawing operations the plots need (pixels, lines, boxes, 5×7 text). */
class Canvas {
  readonly png: PNG;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.png = new PNG({ width, height });
    this.png.data.fill(255);
  }

  set(x: number, y: number, rgb: RGB): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 4;
    this.png.data[o] = rgb[0];
    this.png.data[o + 1] = rgb[1];
    this.png.data[o + 2] = rgb[2];
    this.png.data[o + 3] = 255;
  }

  fill(x: number, y: number, w: number, h: number, rgb: RGB): void {
    for (let v = y; v < y + h; v++) for (let u = x; u < x + w; u++) this.set(u, v, rgb);
  }

  /** A 1-pixel outline just outside the box (x, y, w, h). */
  frame(x: number, y: number, w: number, h: number, rgb: RGB): void {
    for (let u = x - 1; u <= x + w; u++) {
      this.set(u, y - 1, rgb);
      this.set(u, y + h, rgb);
    }
    for (let v = y - 1; v <= y + h; v++) {
      this.set(x - 1, v, rgb);
      this.set(x + w, v, rgb);
    }
  }

  line(x0: number, y0: number, x1: number, y1: number, rgb: RGB): void {
    const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    for (let s = 0; s <= steps; s++)
      this.set(x0 + ((x1 - x0) * s) / steps, y0 + ((y1 - y0) * s) / steps, rgb);
  }

  /** Text whose top-left corner is (x, y) (or centred / right-aligned on x); `scale` enlarges each pixel. */
  text(
    x: number,
    y: number,
    text: string,
    rgb: RGB = TEXT,
    options: { scale?: number; align?: 'left' | 'center' | 'right' } = {},
  ): void {
    const { scale = 1, align = 'left' } = options;
    const width = textWidth(text, scale);
    let left = Math.round(align === 'center' ? x - width / 2 : align === 'right' ? x - width : x);
    for (const character of text) {
      glyphRows(character).forEach((bits, r) => {
        for (let c = 0; c < GLYPH_WIDTH; c++) {
          if (bits & (0x10 >> c)) this.fill(left + c * scale, y + r * scale, scale, scale, rgb);
        }
      });
      left += (GLYPH_WIDTH + 1) * scale;
    }
  }

  /** Text turned 90° anticlockwise (read bottom to top), centred vertically on y, its top at x. */
  verticalText(x: number, y: number, text: string, rgb: RGB = TEXT): void {
    let bottom = Math.round(y + textWidth(text) / 2);
    for (const character of text) {
      glyphRows(character).forEach((bits, r) => {
        for (let c = 0; c < GLYPH_WIDTH; c++) if (bits & (0x10 >> c)) this.set(x + r, bottom - c, rgb);
      });
      bottom -= GLYPH_WIDTH + 1;
    }
  }

  async save(file: string): Promise<void> {
    await mkdir(path.dirname(path.resolve(file)), { recursive: true });
    await writeFile(file, PNG.sync.write(this.png));
  }
}

function textWidth(text: string, scale = 1): number {
  const n = [...text].length;
  return n === 0 ? 0 : (n * (GLYPH_WIDTH + 1) - 1) * scale;
}

/** `text` shortened from the left (with '…' → '...') to at most `width` pixels. */
function truncateLeft(text: string, width: number, scale = 1): string {
  const characters = [...text];
  const max = Math.floor((width / scale + 1) / (GLYPH_WIDTH + 1));
  return characters.length <= max ? text : `...${characters.slice(characters.length - max + 3).join('')}`;
}

/** Evenly spaced round tick values (steps of 1, 2 or 5 × 10^k) covering [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  }
  return ticks;
}

/** A tick label: integers as they are, other values with up to 3 significant digits (1e-4 style when small). */
export function formatTick(value: number): string {
  if (value === 0) return '0';
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const abs = Math.abs(value);
  if (abs < 1e-3 || abs >= 1e6) return value.toExponential(0).replace('e+', 'e');
  return String(Number(value.toPrecision(3)));
}

/** Light-to-dark blue colour ramp for densities (t in [0, 1]). */
function ramp(t: number): RGB {
  const stops: RGB[] = [
    [255, 255, 255],
    [198, 219, 239],
    [107, 174, 214],
    [33, 113, 181],
    [8, 48, 107],
    [3, 19, 43],
  ];
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  const a = stops[i]!;
  const b = stops[i + 1]!;
  return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
}

/** Colour of a histogram cell with `count` points when the fullest cell has `max`: log-scaled, white when empty. */
function densityColour(count: number, max: number): RGB {
  return count === 0 ? [255, 255, 255] : ramp(0.15 + (0.85 * Math.log1p(count)) / Math.log1p(max));
}

/**
 * 2-D density plots side by side: each panel is a `size × size` histogram of the points over
 * [−extent, extent]², log-scaled per panel, with its title above and ticked x₁ / x₂ axes; a colour legend
 * runs along the bottom. Returns the panel order (for captions).
 */
export async function writeDensityPanels(
  file: string,
  panels: { title: string; points: ArrayLike<number> }[],
  options: { size?: number; extent?: number; title?: string } = {},
): Promise<string[]> {
  const { size = 192, extent = 2.5 } = options;
  const left = 30; // y tick labels
  const top = (options.title ? 22 : 0) + 16; // figure title, panel title
  const bottom = 16 + 22; // x tick labels, colour legend
  const panelWidth = left + size + 10;
  const legendWidth = textWidth('log density (each panel): low high') + 72;
  const canvas = new Canvas(
    Math.max(panels.length * panelWidth, panels.length > 1 ? left + legendWidth : 0),
    top + size + bottom,
  );
  if (options.title) canvas.text(canvas.width / 2, 6, options.title, TEXT, { scale: 2, align: 'center' });
  const ticks = niceTicks(-extent, extent, 5);
  const position = (value: number) => ((value + extent) / (2 * extent)) * size;
  panels.forEach((panel, p) => {
    const x0 = p * panelWidth + left;
    const counts = new Float32Array(size * size);
    const n = Math.floor(panel.points.length / 2);
    for (let i = 0; i < n; i++) {
      const u = Math.floor(position(panel.points[2 * i]!));
      const v = Math.floor(size - position(panel.points[2 * i + 1]!));
      if (u >= 0 && u < size && v >= 0 && v < size) counts[v * size + u]! += 1;
    }
    let max = 0;
    for (const c of counts) max = Math.max(max, c);
    for (const t of ticks) {
      const g = Math.round(position(t));
      for (let k = 0; k < size; k++) {
        canvas.set(x0 + g, top + k, GRID);
        canvas.set(x0 + k, top + size - g, GRID);
      }
    }
    for (let v = 0; v < size; v++) {
      for (let u = 0; u < size; u++) {
        const c = counts[v * size + u]!;
        if (c > 0) canvas.set(x0 + u, top + v, densityColour(c, max));
      }
    }
    canvas.frame(x0, top, size, size, AXIS);
    for (const t of ticks) {
      const g = Math.round(position(t));
      canvas.line(x0 + g, top + size + 1, x0 + g, top + size + 3, AXIS);
      canvas.text(x0 + g, top + size + 5, formatTick(t), TEXT, { align: 'center' });
      canvas.line(x0 - 4, top + size - g, x0 - 2, top + size - g, AXIS);
      canvas.text(x0 - 6, top + size - g - 3, formatTick(t), TEXT, { align: 'right' });
    }
    canvas.text(x0 + size / 2, top - 12, truncateLeft(panel.title, size), BLACK, { align: 'center' });
  });
  // Colour legend: the ramp from the emptiest to the fullest cell of a panel (each panel scaled to its own).
  const legendY = top + size + 22;
  const label = panels.length > 1 ? 'log density (each panel): low' : 'log density: low';
  canvas.text(left, legendY, label);
  const barX = left + textWidth(label) + 6;
  const barWidth = 60;
  for (let i = 0; i < barWidth; i++) {
    canvas.fill(barX + i, legendY, 1, GLYPH_HEIGHT, ramp(0.15 + (0.85 * i) / (barWidth - 1)));
  }
  canvas.frame(barX, legendY, barWidth, GLYPH_HEIGHT, AXIS);
  canvas.text(barX + barWidth + 6, legendY, 'high');
  await canvas.save(file);
  return panels.map((p) => p.title);
}

/** Pixels of an image grid [N, H, W, C] (C = 1 or 3, values in [−1, 1]) drawn at (left, top). */
function drawImageGrid(
  canvas: Canvas,
  left: number,
  top: number,
  images: ArrayLike<number>,
  shape: number[],
  cols: number,
): void {
  const [N, H, W, C] = shape as [number, number, number, number];
  const pad = 2;
  for (let n = 0; n < N; n++) {
    const ox = left + pad + (n % cols) * (W + pad);
    const oy = top + pad + Math.floor(n / cols) * (H + pad);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const rgb = [0, 1, 2].map((c) => {
          const v = images[((n * H + y) * W + x) * C + (C === 1 ? 0 : c)]!;
          return Math.round(Math.min(Math.max((v + 1) / 2, 0), 1) * 255);
        }) as unknown as RGB;
        canvas.set(ox + x, oy + y, rgb);
      }
  }
}

function gridSize(shape: number[], cols: number): { width: number; height: number } {
  const [N, H, W] = shape as [number, number, number];
  const rows = Math.ceil(N / cols);
  return { width: cols * (W + 2) + 2, height: rows * (H + 2) + 2 };
}

/** A grid of images [N, H, W, C] (C = 1 or 3) with values in [−1, 1]. */
export async function writeImageGrid(
  file: string,
  images: ArrayLike<number>,
  shape: number[],
  columns?: number,
): Promise<void> {
  await writeImagePanels(file, [{ images, shape }], columns);
}

/**
 * Image grids side by side (e.g. the same noise through several samplers), each `columns` wide, separated by
 * an 8-pixel white gutter; panels with a `title` get it written above them, and `columnLabels` (e.g. the class
 * of each column) are written above every panel's columns.
 */
export async function writeImagePanels(
  file: string,
  panels: { images: ArrayLike<number>; shape: number[]; title?: string }[],
  columns?: number,
  options: { columnLabels?: readonly string[] } = {},
): Promise<void> {
  const gutter = 8;
  const titles = panels.some((p) => p.title) ? 14 : 0;
  const labels = options.columnLabels?.length ? 10 : 0;
  const header = titles + labels;
  const sizes = panels.map((p) => {
    const cols = columns ?? Math.ceil(Math.sqrt(p.shape[0]!));
    return { cols, ...gridSize(p.shape, cols) };
  });
  const width = sizes.reduce((a, s) => a + s.width, 0) + gutter * (panels.length - 1);
  const height = header + Math.max(...sizes.map((s) => s.height));
  const canvas = new Canvas(width, height);
  let left = 0;
  panels.forEach((panel, i) => {
    const { cols, width: w, height: h } = sizes[i]!;
    if (panel.title) canvas.text(left + w / 2, 3, truncateLeft(panel.title, w), BLACK, { align: 'center' });
    if (labels) {
      const cell = panel.shape[2]! + 2;
      for (let c = 0; c < cols; c++) {
        const label = options.columnLabels![c % options.columnLabels!.length]!;
        canvas.text(left + 2 + c * cell + cell / 2 - 1, titles + 1, label, TEXT, { align: 'center' });
      }
    }
    canvas.fill(left, header, w, h, [40, 40, 40]);
    drawImageGrid(canvas, left, header, panel.images, panel.shape, cols);
    left += w + gutter;
  });
  await canvas.save(file);
}

/**
 * A loss curve: the raw values (light) and their exponential moving average (dark) against the iteration, on
 * a log-scaled y axis with ticks, a title and a legend. `firstIteration` numbers the first value (a resumed
 * run starts past 1).
 */
export async function writeLossPlot(
  file: string,
  losses: ArrayLike<number>,
  options: { title?: string; firstIteration?: number } = {},
): Promise<void> {
  const { title = 'training loss', firstIteration = 1 } = options;
  const canvas = new Canvas(640, 360);
  const plot = { left: 64, top: 34, right: 16, bottom: 40 };
  const w = canvas.width - plot.left - plot.right;
  const h = canvas.height - plot.top - plot.bottom;
  canvas.text(canvas.width / 2, 8, truncateLeft(title, canvas.width - 8, 2), BLACK, {
    scale: 2,
    align: 'center',
  });
  canvas.text(plot.left + w / 2, canvas.height - 12, 'iteration', TEXT, { align: 'center' });
  canvas.verticalText(6, plot.top + h / 2, 'loss (log scale)');
  const points = Array.from(losses, (loss, i) => ({ iteration: firstIteration + i, loss })).filter(
    (p) => Number.isFinite(p.loss) && p.loss > 0,
  );
  if (points.length < 2) {
    canvas.frame(plot.left, plot.top, w, h, AXIS);
    canvas.text(plot.left + w / 2, plot.top + h / 2 - 3, 'fewer than two finite losses', TEXT, {
      align: 'center',
    });
    await canvas.save(file);
    return;
  }
  const logs = points.map((p) => Math.log10(p.loss));
  let lo = Math.min(...logs);
  let hi = Math.max(...logs);
  if (hi - lo < 1e-6) {
    lo -= 0.05;
    hi += 0.05;
  }
  const first = points[0]!.iteration;
  const last = points.at(-1)!.iteration;
  const xOf = (iteration: number) => plot.left + ((iteration - first) / Math.max(last - first, 1)) * (w - 1);
  const yOf = (log: number) => plot.top + h - 1 - ((log - lo) / (hi - lo)) * (h - 1);
  // y ticks: decades, else 1-2-5 multiples, else plain round values (placed on the log scale).
  const candidates: number[][] = [[1], [1, 2, 5], [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9]];
  let yTicks: number[] = [];
  for (const multiples of candidates) {
    yTicks = [];
    for (let k = Math.floor(lo) - 1; k <= Math.ceil(hi) + 1; k++) {
      for (const m of multiples) {
        const v = m * 10 ** k;
        if (Math.log10(v) >= lo - 1e-9 && Math.log10(v) <= hi + 1e-9) yTicks.push(v);
      }
    }
    if (yTicks.length >= 3) break;
  }
  if (yTicks.length < 2) yTicks = niceTicks(10 ** lo, 10 ** hi, 4).filter((v) => v > 0);
  if (yTicks.length > 8) yTicks = yTicks.filter((_, i) => i % Math.ceil(yTicks.length / 8) === 0);
  const xTicks = niceTicks(first, last, 6).filter((t) => Number.isInteger(t));
  for (const v of yTicks) {
    const y = yOf(Math.log10(v));
    canvas.line(plot.left, y, plot.left + w - 1, y, GRID);
    canvas.line(plot.left - 4, y, plot.left - 2, y, AXIS);
    canvas.text(plot.left - 6, y - 3, formatTick(Number(v.toPrecision(3))), TEXT, { align: 'right' });
  }
  for (const t of xTicks) {
    const x = xOf(t);
    canvas.line(x, plot.top, x, plot.top + h - 1, GRID);
    canvas.line(x, plot.top + h + 1, x, plot.top + h + 3, AXIS);
    canvas.text(x, plot.top + h + 6, formatTick(t), TEXT, { align: 'center' });
  }
  const raw: RGB = [175, 200, 232];
  const average: RGB = [20, 70, 160];
  const drawSeries = (values: number[], rgb: RGB) => {
    for (let i = 1; i < values.length; i++) {
      canvas.line(
        Math.round(xOf(points[i - 1]!.iteration)),
        Math.round(yOf(values[i - 1]!)),
        Math.round(xOf(points[i]!.iteration)),
        Math.round(yOf(values[i]!)),
        rgb,
      );
    }
  };
  const smooth: number[] = [];
  let acc = logs[0]!;
  for (const l of logs) {
    acc = 0.95 * acc + 0.05 * l;
    smooth.push(acc);
  }
  drawSeries(logs, raw);
  drawSeries(smooth, average);
  canvas.frame(plot.left, plot.top, w, h, AXIS);
  // Legend, top right inside the plot.
  const entries: [string, RGB][] = [
    ['loss per iteration', raw],
    ['moving average (0.95)', average],
  ];
  const legendWidth = 24 + Math.max(...entries.map(([label]) => textWidth(label))) + 12;
  const lx = plot.left + w - legendWidth - 6;
  const ly = plot.top + 6;
  canvas.fill(lx, ly, legendWidth, 12 * entries.length + 6, [255, 255, 255]);
  canvas.frame(lx, ly, legendWidth, 12 * entries.length + 6, GRID);
  entries.forEach(([label, rgb], i) => {
    const y = ly + 6 + 12 * i;
    canvas.fill(lx + 6, y + 2, 14, 2, rgb);
    canvas.text(lx + 26, y, label);
  });
  await canvas.save(file);
}
