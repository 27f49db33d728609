import { assertNumber, InvalidArgumentError } from '@piflow/core';

/** Where each generated image goes on the canvas: a grid of `columns` cells, filled row by row. */
export interface GridLayout {
  /** Number of images (cells in use). */
  count: number;
  columns: number;
  rows: number;
  /** Size of one image in its own pixels. */
  imageHeight: number;
  imageWidth: number;
  /** Canvas pixels per image pixel (nearest-neighbour magnification). */
  scale: number;
  /** Size of one cell on the canvas: image size × scale. */
  cellWidth: number;
  cellHeight: number;
  /** Canvas pixels between cells and around the grid. */
  gap: number;
  /** Canvas size that holds the whole grid. */
  width: number;
  height: number;
}

export interface GridOptions {
  /** Cells per row (at most; fewer when there are fewer images). Default 10. */
  columns?: number;
  imageHeight: number;
  imageWidth: number;
  /** Default 2. */
  scale?: number;
  /** Default 4. */
  gap?: number;
}

/** The grid that shows `count` images of `imageHeight × imageWidth`. */
export function gridLayout(count: number, options: GridOptions): GridLayout {
  assertNumber('count', count, { min: 1, integer: true });
  const { imageHeight, imageWidth, columns: maxColumns = 10, scale = 2, gap = 4 } = options ?? {};
  assertNumber('options.imageHeight', imageHeight, { min: 1, integer: true });
  assertNumber('options.imageWidth', imageWidth, { min: 1, integer: true });
  assertNumber('options.columns', maxColumns, { min: 1, integer: true });
  assertNumber('options.scale', scale, { min: 1, integer: true });
  assertNumber('options.gap', gap, { min: 0, integer: true });
  const columns = Math.min(maxColumns, count);
  const rows = Math.ceil(count / columns);
  const cellWidth = imageWidth * scale;
  const cellHeight = imageHeight * scale;
  return {
    count,
    columns,
    rows,
    imageHeight,
    imageWidth,
    scale,
    cellWidth,
    cellHeight,
    gap,
    width: gap + columns * (cellWidth + gap),
    height: gap + rows * (cellHeight + gap),
  };
}

/** Canvas position of the top-left pixel of cell `index` (row-major). */
export function cellOrigin(layout: GridLayout, index: number): { x: number; y: number } {
  assertNumber('index', index, { min: 0, max: layout.count - 1, integer: true });
  const column = index % layout.columns;
  const row = Math.floor(index / layout.columns);
  return {
    x: layout.gap + column * (layout.cellWidth + layout.gap),
    y: layout.gap + row * (layout.cellHeight + layout.gap),
  };
}

/** A pixel value in [−1, 1] (the data's range: −1 black, +1 white) as a grey level 0 – 255, clamped. */
export function pixelLevel(value: number): number {
  return Math.round(Math.min(Math.max((value + 1) * 127.5, 0), 255));
}

/** Colour of the gaps between cells (slate-200). */
export const GRID_BACKGROUND: readonly [number, number, number] = [0xe2, 0xe8, 0xf0];
/** Colour of a pixel that is not a finite number. */
export const NON_FINITE: readonly [number, number, number] = [0xdc, 0x26, 0x26];

/**
 * Renders images `values` ([count, H, W, C] channels-last, flattened; C = 1 grey or 3 RGB, values in [−1, 1])
 * into an RGBA buffer of `layout.width × layout.height` pixels, each image pixel a `scale × scale` block.
 * Returns the pixels and the number of images drawn whole: those whose every value is finite (non-finite
 * pixels are drawn red).
 */
export function renderDigitGrid(
  values: ArrayLike<number>,
  layout: GridLayout,
  channels = 1,
): { pixels: Uint8ClampedArray<ArrayBuffer>; drawn: number } {
  if (channels !== 1 && channels !== 3) {
    throw new InvalidArgumentError('channels', '1 (grey) or 3 (RGB)', String(channels));
  }
  const { count, imageHeight: H, imageWidth: W, scale, width, height } = layout;
  const size = H * W * channels;
  if (values?.length !== count * size) {
    throw new InvalidArgumentError(
      'values',
      `${count} images of ${H} × ${W} × ${channels} (${count * size} numbers)`,
      `${values?.length} numbers`,
    );
  }
  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    pixels.set(GRID_BACKGROUND, 4 * p);
    pixels[4 * p + 3] = 255;
  }
  let drawn = 0;
  const rgb = [0, 0, 0];
  for (let n = 0; n < count; n++) {
    const { x: left, y: top } = cellOrigin(layout, n);
    let finite = true;
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        const k = n * size + (i * W + j) * channels;
        let ok = true;
        for (let c = 0; c < 3; c++) {
          const v = values[k + (channels === 1 ? 0 : c)]!;
          if (!Number.isFinite(v)) ok = false;
          rgb[c] = pixelLevel(v);
        }
        const colour = ok ? rgb : NON_FINITE;
        if (!ok) finite = false;
        for (let dy = 0; dy < scale; dy++) {
          let q = 4 * ((top + i * scale + dy) * width + left + j * scale);
          for (let dx = 0; dx < scale; dx++, q += 4) {
            pixels[q] = colour[0]!;
            pixels[q + 1] = colour[1]!;
            pixels[q + 2] = colour[2]!;
          }
        }
      }
    }
    if (finite) drawn++;
  }
  return { pixels, drawn };
}

/** Class labels for `count` images: the chosen digits in turn (all ten when none is chosen). */
export function cycleLabels(digits: readonly number[], count: number, numClasses = 10): Int32Array {
  assertNumber('count', count, { min: 1, integer: true });
  assertNumber('numClasses', numClasses, { min: 1, integer: true });
  if (!Array.isArray(digits)) {
    throw new InvalidArgumentError('digits', 'an array of class labels', typeof digits);
  }
  for (const d of digits) {
    assertNumber('digits[]', d, { min: 0, max: numClasses - 1, integer: true });
  }
  const chosen = digits.length > 0 ? digits : Array.from({ length: numClasses }, (_, i) => i);
  return Int32Array.from({ length: count }, (_, i) => chosen[i % chosen.length]!);
}
