import type { Trajectories } from './generate';

/** The square region of the plane a canvas shows. */
export interface View {
  min: number;
  max: number;
}

/** The 2-D checkerboard of @piflow/datasets' defaults: 4 × 4 squares over [−2, 2]², data on even (x + y). */
export const CHECKERBOARD = { squares: 4, size: 4 } as const;

export const SAMPLE_COLOR = '#1d4ed8';
const BACKGROUND = '#ffffff';
const TARGET_FILL = '#eef2f7';
const AXIS = '#cbd5e1';
const TEACHER_COLOR = 'rgba(100, 116, 139, 0.45)';
const STEP_COLORS = ['#dc2626', '#ea580c', '#16a34a', '#7c3aed'];

function toCanvas(view: View, size: number) {
  const scale = size / (view.max - view.min);
  return {
    x: (v: number) => (v - view.min) * scale,
    y: (v: number) => (view.max - v) * scale,
    scale,
  };
}

/** Clears the canvas and draws the target checkerboard's data squares faintly, with the axes. */
export function drawBackground(context: CanvasRenderingContext2D, view: View): void {
  const size = context.canvas.width;
  const map = toCanvas(view, size);
  context.fillStyle = BACKGROUND;
  context.fillRect(0, 0, size, context.canvas.height);
  const { squares, size: extent } = CHECKERBOARD;
  const cell = extent / squares;
  context.fillStyle = TARGET_FILL;
  for (let cx = 0; cx < squares; cx++) {
    for (let cy = 0; cy < squares; cy++) {
      if ((cx + cy) % 2 !== 0) continue;
      const x0 = -extent / 2 + cx * cell;
      const y0 = -extent / 2 + cy * cell;
      context.fillRect(map.x(x0), map.y(y0 + cell), cell * map.scale, cell * map.scale);
    }
  }
  context.strokeStyle = AXIS;
  context.lineWidth = 1;
  context.beginPath();
  context.moveTo(map.x(0), 0);
  context.lineTo(map.x(0), size);
  context.moveTo(0, map.y(0));
  context.lineTo(size, map.y(0));
  context.stroke();
}

/**
 * Draws 2-D samples ([x0, y0, x1, y1, …]) as 2 × 2-pixel dots over the background. Returns the number of
 * samples drawn: the finite ones (a non-finite sample has no position and is left out).
 */
export function drawSamples(context: CanvasRenderingContext2D, values: Float32Array, view: View): number {
  drawBackground(context, view);
  const map = toCanvas(view, context.canvas.width);
  context.fillStyle = SAMPLE_COLOR;
  let drawn = 0;
  for (let i = 0; i + 1 < values.length; i += 2) {
    const x = values[i]!;
    const y = values[i + 1]!;
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    context.fillRect(Math.round(map.x(x)) - 1, Math.round(map.y(y)) - 1, 2, 2);
    drawn++;
  }
  return drawn;
}

function pathPoint(paths: Trajectories, t: number, i: number): [number, number] {
  const k = (t * paths.count + i) * paths.dim;
  return [paths.points[k]!, paths.points[k + 1]!];
}

/**
 * The trajectory view: the teacher's ODE paths (grey) and the policy's substep paths from the same noise (one
 * colour per student step), with a ring where the student network was evaluated and a dot at each end.
 * Returns the number of policy paths drawn.
 */
export function drawTrajectories(
  context: CanvasRenderingContext2D,
  teacher: Trajectories,
  policy: Trajectories,
  view: View,
): number {
  drawBackground(context, view);
  const map = toCanvas(view, context.canvas.width);
  context.lineCap = 'round';
  context.lineJoin = 'round';
  context.strokeStyle = TEACHER_COLOR;
  context.lineWidth = 5;
  for (let i = 0; i < teacher.count; i++) {
    context.beginPath();
    for (let t = 0; t < teacher.length; t++) {
      const [x, y] = pathPoint(teacher, t, i);
      if (t === 0) context.moveTo(map.x(x), map.y(y));
      else context.lineTo(map.x(x), map.y(y));
    }
    context.stroke();
  }
  const bounds = [...policy.evaluations, policy.length - 1];
  context.lineWidth = 1.25;
  for (let i = 0; i < policy.count; i++) {
    for (let s = 0; s + 1 < bounds.length; s++) {
      context.strokeStyle = STEP_COLORS[s % STEP_COLORS.length]!;
      context.beginPath();
      for (let t = bounds[s]!; t <= bounds[s + 1]!; t++) {
        const [x, y] = pathPoint(policy, t, i);
        if (t === bounds[s]) context.moveTo(map.x(x), map.y(y));
        else context.lineTo(map.x(x), map.y(y));
      }
      context.stroke();
    }
  }
  for (let i = 0; i < policy.count; i++) {
    policy.evaluations.forEach((t, s) => {
      const [x, y] = pathPoint(policy, t, i);
      context.strokeStyle = STEP_COLORS[s % STEP_COLORS.length]!;
      context.lineWidth = 1.5;
      context.beginPath();
      context.arc(map.x(x), map.y(y), 3.5, 0, 2 * Math.PI);
      context.stroke();
    });
    const [tx, ty] = pathPoint(teacher, teacher.length - 1, i);
    context.fillStyle = '#475569';
    context.beginPath();
    context.arc(map.x(tx), map.y(ty), 2.5, 0, 2 * Math.PI);
    context.fill();
    const [px, py] = pathPoint(policy, policy.length - 1, i);
    context.fillStyle = SAMPLE_COLOR;
    context.beginPath();
    context.arc(map.x(px), map.y(py), 2.5, 0, 2 * Math.PI);
    context.fill();
  }
  return policy.count;
}

/** CSS colour of student step `index` in the trajectory view (for the legend). */
export function stepColor(index: number): string {
  return STEP_COLORS[index % STEP_COLORS.length]!;
}
