import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { glyphRows } from './font';
import { formatTick, niceTicks, writeDensityPanels, writeLossPlot } from './images';

/** Pixels darker than mid-grey inside the box (x, y, w, h) of a PNG. */
function darkPixels(png: PNG, x: number, y: number, w: number, h: number): number {
  let n = 0;
  for (let v = y; v < y + h; v++) {
    for (let u = x; u < x + w; u++) {
      const o = (v * png.width + u) * 4;
      if (png.data[o]! + png.data[o + 1]! + png.data[o + 2]! < 3 * 128) n++;
    }
  }
  return n;
}

describe('plots', () => {
  it('ticks at round values, labelled compactly, in a 5×7 font', () => {
    expect(niceTicks(-2.5, 2.5, 5)).toEqual([-2, -1, 0, 1, 2]);
    expect(niceTicks(1, 1500, 6)).toEqual([500, 1000, 1500]);
    expect(niceTicks(0, 0.3, 3)).toEqual([0, 0.1, 0.2, 0.3].map((t) => expect.closeTo(t, 12)));
    expect([0, 2000, 0.15, 0.000012, -1].map(formatTick)).toEqual(['0', '2000', '0.15', '1e-5', '-1']);
    expect(glyphRows('A')).toEqual([0x0e, 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11]);
    expect(glyphRows('π')).toHaveLength(7);
    expect(glyphRows('∑')).toEqual([0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f]); // not in the font: a box
  });

  it('a loss plot has a title, tick labels on both axes and a legend; density panels have titles and ticks', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-plots-'));
    const losses = Array.from({ length: 300 }, (_, i) => 0.5 * Math.exp(-i / 80) + 0.05);
    await writeLossPlot(path.join(dir, 'loss.png'), losses, { title: 'π-ID loss' });
    const loss = PNG.sync.read(await readFile(path.join(dir, 'loss.png')));
    expect([loss.width, loss.height]).toEqual([640, 360]);
    expect(darkPixels(loss, 200, 0, 240, 30)).toBeGreaterThan(50); // the title
    expect(darkPixels(loss, 14, 34, 46, 286)).toBeGreaterThan(30); // y tick labels
    expect(darkPixels(loss, 64, 322, 560, 14)).toBeGreaterThan(30); // x tick labels
    expect(darkPixels(loss, 430, 40, 190, 30)).toBeGreaterThan(50); // the legend's two entries
    const points = Float32Array.from({ length: 2000 }, (_, i) => ((i * 0.618) % 4) - 2);
    const order = await writeDensityPanels(path.join(dir, 'density.png'), [
      { title: 'data', points },
      { title: 'student', points },
    ]);
    expect(order).toEqual(['data', 'student']);
    const density = PNG.sync.read(await readFile(path.join(dir, 'density.png')));
    expect(density.width).toBe(2 * (30 + 192 + 10));
    expect(darkPixels(density, 30, 0, 192, 12)).toBeGreaterThan(10); // the first panel's title
    expect(darkPixels(density, 0, 16, 28, 192)).toBeGreaterThan(10); // its y tick labels
  });
});
