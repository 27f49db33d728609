import { InvalidArgumentError } from '@piflow/core';
import { describe, expect, it } from 'vitest';
import {
  cellOrigin,
  cycleLabels,
  GRID_BACKGROUND,
  gridLayout,
  NON_FINITE,
  pixelLevel,
  renderDigitGrid,
} from './digit-grid';

describe('gridLayout', () => {
  it('fills rows of `columns` cells with a gap between cells and around the grid', () => {
    const layout = gridLayout(23, { imageHeight: 28, imageWidth: 28 });
    expect(layout).toMatchObject({ count: 23, columns: 10, rows: 3, cellWidth: 56, cellHeight: 56, gap: 4 });
    expect(layout.width).toBe(4 + 10 * 60);
    expect(layout.height).toBe(4 + 3 * 60);
    expect(cellOrigin(layout, 0)).toEqual({ x: 4, y: 4 });
    expect(cellOrigin(layout, 9)).toEqual({ x: 4 + 9 * 60, y: 4 });
    expect(cellOrigin(layout, 10)).toEqual({ x: 4, y: 64 });
    expect(cellOrigin(layout, 22)).toEqual({ x: 4 + 2 * 60, y: 4 + 2 * 60 });
    // The last cell ends one gap before the canvas edge.
    const last = cellOrigin(gridLayout(30, { imageHeight: 28, imageWidth: 28 }), 29);
    expect(last.x + 56 + 4).toBe(layout.width);
    expect(last.y + 56 + 4).toBe(4 + 3 * 60);
  });

  it('uses fewer columns for fewer images, and other sizes, scales and gaps', () => {
    expect(gridLayout(3, { imageHeight: 28, imageWidth: 28 })).toMatchObject({ columns: 3, rows: 1 });
    const layout = gridLayout(5, { imageHeight: 2, imageWidth: 3, columns: 2, scale: 3, gap: 1 });
    expect(layout).toMatchObject({ columns: 2, rows: 3, cellWidth: 9, cellHeight: 6, width: 21, height: 22 });
    expect(cellOrigin(layout, 3)).toEqual({ x: 11, y: 8 });
  });

  it('rejects bad counts, sizes and indices, naming the argument', () => {
    expect(() => gridLayout(0, { imageHeight: 28, imageWidth: 28 })).toThrow(InvalidArgumentError);
    expect(() => gridLayout(2.5, { imageHeight: 28, imageWidth: 28 })).toThrow(/count/);
    expect(() => gridLayout(4, { imageHeight: 28, imageWidth: 0 })).toThrow(/imageWidth/);
    expect(() => gridLayout(4, { imageHeight: 28, imageWidth: 28, scale: 1.5 })).toThrow(/scale/);
    expect(() => gridLayout(4, { imageHeight: 28, imageWidth: 28, columns: 0 })).toThrow(/columns/);
    expect(() => cellOrigin(gridLayout(4, { imageHeight: 28, imageWidth: 28 }), 4)).toThrow(/index/);
  });
});

describe('pixelLevel', () => {
  it('maps [−1, 1] to 0 – 255 and clamps outside it', () => {
    expect([-1, 0, 1, -3, 2].map(pixelLevel)).toEqual([0, 128, 255, 0, 255]);
    expect(pixelLevel(-0.5)).toBe(64);
  });
});

/** RGBA of canvas pixel (x, y). */
const at = (pixels: Uint8ClampedArray, width: number, x: number, y: number) =>
  Array.from(pixels.subarray(4 * (y * width + x), 4 * (y * width + x) + 4));

describe('renderDigitGrid', () => {
  it('draws each image pixel as a scale × scale block in its cell, over the background', () => {
    // Two 2 × 2 grey images: image 0 = [−1, 1; 0, 1], image 1 = all −1 but one 0.5.
    const values = Float32Array.of(-1, 1, 0, 1, -1, -1, -1, 0.5);
    const layout = gridLayout(2, { imageHeight: 2, imageWidth: 2, scale: 2, gap: 1 });
    expect(layout).toMatchObject({ width: 11, height: 6 });
    const { pixels, drawn } = renderDigitGrid(values, layout);
    expect(pixels.length).toBe(11 * 6 * 4);
    expect(drawn).toBe(2);
    const bg = [...GRID_BACKGROUND, 255];
    expect(at(pixels, 11, 0, 0)).toEqual(bg);
    expect(at(pixels, 11, 5, 3)).toEqual(bg); // the gap between the cells
    expect(at(pixels, 11, 10, 5)).toEqual(bg);
    // Image 0 at (1, 1): its pixel (0, 1) = 1 covers canvas x 3–4, y 1–2.
    expect(at(pixels, 11, 1, 1)).toEqual([0, 0, 0, 255]);
    expect(at(pixels, 11, 2, 2)).toEqual([0, 0, 0, 255]);
    expect(at(pixels, 11, 3, 1)).toEqual([255, 255, 255, 255]);
    expect(at(pixels, 11, 4, 2)).toEqual([255, 255, 255, 255]);
    expect(at(pixels, 11, 1, 3)).toEqual([128, 128, 128, 255]);
    expect(at(pixels, 11, 4, 4)).toEqual([255, 255, 255, 255]);
    // Image 1 at (6, 1): its pixel (1, 1) = 0.5 covers canvas x 8–9, y 3–4.
    expect(at(pixels, 11, 6, 1)).toEqual([0, 0, 0, 255]);
    expect(at(pixels, 11, 9, 4)).toEqual([191, 191, 191, 255]);
    expect(at(pixels, 11, 7, 4)).toEqual([0, 0, 0, 255]);
  });

  it('draws RGB images and marks non-finite pixels red, not counting their images as drawn', () => {
    const values = Float32Array.of(1, -1, -1, Number.NaN, 0, 0);
    const layout = gridLayout(2, { imageHeight: 1, imageWidth: 1, scale: 1, gap: 0 });
    const { pixels, drawn } = renderDigitGrid(values, layout, 3);
    expect(drawn).toBe(1);
    expect(at(pixels, 2, 0, 0)).toEqual([255, 0, 0, 255]);
    expect(at(pixels, 2, 1, 0)).toEqual([...NON_FINITE, 255]);
  });

  it('checks that the values fill the layout', () => {
    const layout = gridLayout(2, { imageHeight: 2, imageWidth: 2 });
    expect(() => renderDigitGrid(new Float32Array(7), layout)).toThrow(/values.*2 images of 2 × 2 × 1/);
    expect(() => renderDigitGrid(new Float32Array(8), layout, 2)).toThrow(/channels/);
  });
});

describe('cycleLabels', () => {
  it('repeats the chosen digits over the images, all ten when none is chosen', () => {
    expect([...cycleLabels([3, 7], 5)]).toEqual([3, 7, 3, 7, 3]);
    expect([...cycleLabels([], 12)]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(cycleLabels([5], 3)).toBeInstanceOf(Int32Array);
  });

  it('rejects labels outside the classes and bad counts', () => {
    expect(() => cycleLabels([10], 4)).toThrow(/digits\[\]/);
    expect(() => cycleLabels([1.5], 4)).toThrow(InvalidArgumentError);
    expect(() => cycleLabels([1], 0)).toThrow(/count/);
  });
});
