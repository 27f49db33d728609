import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PNG } from 'pngjs';

async function save(file: string, png: PNG): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, PNG.sync.write(png));
}

/** Viridis-like colour ramp for densities (t in [0, 1]). */
function ramp(t: number): [number, number, number] {
  const stops: [number, number, number][] = [
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

/**
 * 2-D density plots side by side: each panel is a `size × size` histogram of the points over
 * [−extent, extent]², log-scaled, separated by a 4-pixel gutter. Returns the panel order for captions.
 */
export async function writeDensityPanels(
  file: string,
  panels: { title: string; points: ArrayLike<number> }[],
  options: { size?: number; extent?: number } = {},
): Promise<string[]> {
  const { size = 192, extent = 2.5 } = options;
  const gutter = 4;
  const png = new PNG({ width: panels.length * size + (panels.length - 1) * gutter, height: size });
  png.data.fill(255);
  panels.forEach((panel, p) => {
    const counts = new Float32Array(size * size);
    const n = panel.points.length / 2;
    for (let i = 0; i < n; i++) {
      const u = Math.floor(((panel.points[2 * i]! + extent) / (2 * extent)) * size);
      const v = Math.floor(((extent - panel.points[2 * i + 1]!) / (2 * extent)) * size);
      if (u >= 0 && u < size && v >= 0 && v < size) counts[v * size + u]! += 1;
    }
    let max = 0;
    for (const c of counts) max = Math.max(max, c);
    const x0 = p * (size + gutter);
    for (let v = 0; v < size; v++) {
      for (let u = 0; u < size; u++) {
        const c = counts[v * size + u]!;
        const [r, g, b] = c === 0 ? [255, 255, 255] : ramp(0.15 + (0.85 * Math.log1p(c)) / Math.log1p(max));
        const o = (v * png.width + x0 + u) * 4;
        png.data[o] = r;
        png.data[o + 1] = g;
        png.data[o + 2] = b;
        png.data[o + 3] = 255;
      }
    }
    if (p > 0) {
      for (let v = 0; v < size; v++)
        for (let u = x0 - gutter; u < x0; u++) {
          const o = (v * png.width + u) * 4;
          png.data[o] = png.data[o + 1] = png.data[o + 2] = 80;
        }
    }
  });
  await save(file, png);
  return panels.map((p) => p.title);
}

/** Pixels of an image grid [N, H, W, C] (C = 1 or 3, values in [−1, 1]) drawn into `png` at (left, top). */
function drawImageGrid(
  png: PNG,
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
        const o = ((oy + y) * png.width + ox + x) * 4;
        for (let c = 0; c < 3; c++) {
          const v = images[((n * H + y) * W + x) * C + (C === 1 ? 0 : c)]!;
          png.data[o + c] = Math.round(Math.min(Math.max((v + 1) / 2, 0), 1) * 255);
        }
        png.data[o + 3] = 255;
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
 * an 8-pixel white gutter.
 */
export async function writeImagePanels(
  file: string,
  panels: { images: ArrayLike<number>; shape: number[] }[],
  columns?: number,
): Promise<void> {
  const gutter = 8;
  const sizes = panels.map((p) => {
    const cols = columns ?? Math.ceil(Math.sqrt(p.shape[0]!));
    return { cols, ...gridSize(p.shape, cols) };
  });
  const width = sizes.reduce((a, s) => a + s.width, 0) + gutter * (panels.length - 1);
  const height = Math.max(...sizes.map((s) => s.height));
  const png = new PNG({ width, height });
  png.data.fill(255);
  let left = 0;
  panels.forEach((panel, i) => {
    const { cols, width: w, height: h } = sizes[i]!;
    for (let y = 0; y < h; y++)
      for (let x = left; x < left + w; x++) {
        const o = (y * width + x) * 4;
        png.data[o] = png.data[o + 1] = png.data[o + 2] = 40;
      }
    drawImageGrid(png, left, 0, panel.images, panel.shape, cols);
    left += w + gutter;
  });
  await save(file, png);
}

/** A loss curve (log-scaled y, a light moving average over the raw values) on white, with a frame. */
export async function writeLossPlot(file: string, losses: ArrayLike<number>): Promise<void> {
  const width = 480;
  const height = 240;
  const margin = 10;
  const png = new PNG({ width, height });
  png.data.fill(255);
  const values = Array.from(losses).filter((v) => Number.isFinite(v) && v > 0);
  const put = (x: number, y: number, rgb: [number, number, number]) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const o = (y * width + x) * 4;
    png.data[o] = rgb[0];
    png.data[o + 1] = rgb[1];
    png.data[o + 2] = rgb[2];
  };
  for (let x = margin; x < width - margin; x++) {
    put(x, margin, [160, 160, 160]);
    put(x, height - margin, [160, 160, 160]);
  }
  for (let y = margin; y < height - margin; y++) {
    put(margin, y, [160, 160, 160]);
    put(width - margin, y, [160, 160, 160]);
  }
  if (values.length > 1) {
    const logs = values.map(Math.log);
    const lo = Math.min(...logs);
    const hi = Math.max(...logs);
    const smooth: number[] = [];
    let acc = logs[0]!;
    for (const l of logs) {
      acc = 0.95 * acc + 0.05 * l;
      smooth.push(acc);
    }
    const plot = (series: number[], rgb: [number, number, number]) => {
      let prev: [number, number] | undefined;
      series.forEach((l, i) => {
        const x = Math.round(margin + (i / (series.length - 1)) * (width - 2 * margin));
        const y = Math.round(height - margin - ((l - lo) / Math.max(hi - lo, 1e-9)) * (height - 2 * margin));
        if (prev) {
          const steps = Math.max(Math.abs(x - prev[0]), Math.abs(y - prev[1]), 1);
          for (let s = 0; s <= steps; s++)
            put(
              Math.round(prev[0] + ((x - prev[0]) * s) / steps),
              Math.round(prev[1] + ((y - prev[1]) * s) / steps),
              rgb,
            );
        }
        prev = [x, y];
      });
    };
    plot(logs, [190, 210, 235]);
    plot(smooth, [20, 70, 160]);
  }
  await save(file, png);
}
