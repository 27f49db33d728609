// A float64 reference of a FLUX.1-style latent transformer teacher, written from the FLUX.1 description in
// plain loops (no tfjs ops): 2×2 patch packing of channels-last latents, position ids (0, row, column) for
// image tokens and zeros for text tokens, 3-axis rotary embeddings (θ = 10000, consecutive feature pairs),
// joint attention over [text; image] with per-stream adaLN modulation (shift, scale, gate), tanh-GELU MLPs,
// and the final modulated norm and projection; the velocity is the unpacked prediction. Tests compare the
// tfjs adapter (createLatentTransformerTeacher around TinyFluxTransformer) with it.

type Matrix = { rows: number; cols: number; data: Float64Array };

export interface FluxReferenceWeights {
  /** Weights by name, as TinyFluxTransformer.save writes them (`<layer>.weight` [in, out], `<layer>.bias`). */
  get(name: string): Float64Array;
  hiddenDim: number;
  numHeads: number;
  depth: number;
  ropeAxesDim: readonly [number, number, number];
  acceptsGuidance: boolean;
  pooled: boolean;
}

function linear(w: FluxReferenceWeights, layer: string, x: Matrix): Matrix {
  const weight = w.get(`${layer}.weight`);
  const bias = w.get(`${layer}.bias`);
  const out = bias.length;
  const data = new Float64Array(x.rows * out);
  for (let r = 0; r < x.rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = bias[o]!;
      for (let i = 0; i < x.cols; i++) s += x.data[r * x.cols + i]! * weight[i * out + o]!;
      data[r * out + o] = s;
    }
  }
  return { rows: x.rows, cols: out, data };
}

const map = (x: Matrix, f: (v: number) => number): Matrix => ({ ...x, data: x.data.map(f) });
const silu = (v: number) => v / (1 + Math.exp(-v));
const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

function layerNorm(x: Matrix): Matrix {
  const data = new Float64Array(x.data.length);
  for (let r = 0; r < x.rows; r++) {
    const row = x.data.subarray(r * x.cols, (r + 1) * x.cols);
    const mean = row.reduce((a, v) => a + v, 0) / x.cols;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / x.cols;
    for (let c = 0; c < x.cols; c++) data[r * x.cols + c] = (row[c]! - mean) / Math.sqrt(variance + 1e-6);
  }
  return { rows: x.rows, cols: x.cols, data };
}

/** x·(1 + scale) + shift, with shift and scale one row (the sample's modulation). */
function modulate(x: Matrix, shift: Float64Array, scale: Float64Array): Matrix {
  return { ...x, data: x.data.map((v, i) => v * (1 + scale[i % x.cols]!) + shift[i % x.cols]!) };
}

/** [cos(t·f_i) …, sin(t·f_i) …], f_i = e^(−ln(10000)·i/16), i < 16. */
function sinusoidal(t: number): Matrix {
  const data = new Float64Array(32);
  for (let i = 0; i < 16; i++) {
    const arg = t * Math.exp((-Math.log(10000) * i) / 16);
    data[i] = Math.cos(arg);
    data[16 + i] = Math.sin(arg);
  }
  return { rows: 1, cols: 32, data };
}

/** Rotates feature pairs (2i, 2i + 1) of one head's vector by the angle of position `ids` on RoPE pair i. */
function rope(vector: Float64Array, ids: readonly number[], axesDim: readonly number[]): Float64Array {
  const out = new Float64Array(vector.length);
  let pair = 0;
  axesDim.forEach((dim, axis) => {
    for (let i = 0; i < dim / 2; i++, pair++) {
      const angle = ids[axis]! * 10000 ** (-(2 * i) / dim);
      const [x, y] = [vector[2 * pair]!, vector[2 * pair + 1]!];
      out[2 * pair] = x * Math.cos(angle) - y * Math.sin(angle);
      out[2 * pair + 1] = x * Math.sin(angle) + y * Math.cos(angle);
    }
  });
  return out;
}

const row = (x: Matrix, r: number) => x.data.subarray(r * x.cols, (r + 1) * x.cols);
const chunk = (v: Float64Array, k: number, n: number) =>
  v.subarray((k * v.length) / n, ((k + 1) * v.length) / n);

/**
 * The velocity u at latents x [H, W, 16] (one sample, channels last, flat), σ, text embeddings [T, Dt] and
 * pooled embedding, with embedded guidance g (FLUX.1-dev), in float64. Returns u flat like x.
 */
export function fluxReferenceVelocity(
  w: FluxReferenceWeights,
  x: Float64Array,
  shape: readonly [number, number, number],
  sigma: number,
  text: Matrix,
  pooled: Float64Array | undefined,
  guidance: number,
): Float64Array {
  const [H, W, C] = shape;
  const h = H / 2;
  const wd = W / 2;
  const L = h * wd;
  const T = text.rows;
  // packing: token (i, j) row-major, feature c·4 + dy·2 + dx
  const tokens: Matrix = { rows: L, cols: 4 * C, data: new Float64Array(L * 4 * C) };
  for (let i = 0; i < h; i++)
    for (let j = 0; j < wd; j++)
      for (let c = 0; c < C; c++)
        for (let dy = 0; dy < 2; dy++)
          for (let dx = 0; dx < 2; dx++)
            tokens.data[(i * wd + j) * 4 * C + c * 4 + dy * 2 + dx] =
              x[((2 * i + dy) * W + 2 * j + dx) * C + c]!;
  const ids = [
    ...Array.from({ length: T }, () => [0, 0, 0]),
    ...Array.from({ length: L }, (_, t) => [0, Math.floor(t / wd), t % wd]),
  ];
  // conditioning vector: timestep (σ·1000 sinusoidal), guidance, pooled text; SiLU
  const mlp = (a: string, b: string, v: Matrix) => linear(w, b, map(linear(w, a, v), silu));
  const D = w.hiddenDim;
  const vec = new Float64Array(D);
  const add = (m: Matrix) => m.data.forEach((v, i) => (vec[i]! += v));
  add(mlp('timeIn', 'timeOut', sinusoidal(sigma * 1000)));
  if (w.acceptsGuidance) add(mlp('guidanceIn', 'guidanceOut', sinusoidal(guidance * 1000)));
  if (w.pooled && pooled) add(mlp('pooledIn', 'pooledOut', { rows: 1, cols: pooled.length, data: pooled }));
  const cond: Matrix = { rows: 1, cols: D, data: vec.map(silu) };

  let img = linear(w, 'imageIn', tokens);
  let txt = linear(w, 'textIn', text);
  const Hn = w.numHeads;
  const hd = D / Hn;
  for (let b = 0; b < w.depth; b++) {
    const mi = linear(w, `block${b}.image.modulation`, cond).data;
    const mt = linear(w, `block${b}.text.modulation`, cond).data;
    const m = (mod: Float64Array, k: number) => chunk(mod, k, 6);
    const qkvI = linear(w, `block${b}.image.qkv`, modulate(layerNorm(img), m(mi, 0), m(mi, 1)));
    const qkvT = linear(w, `block${b}.text.qkv`, modulate(layerNorm(txt), m(mt, 0), m(mt, 1)));
    const N = T + L;
    const part = (n: number, k: number) =>
      n < T ? chunk(row(qkvT, n), k, 3) : chunk(row(qkvI, n - T), k, 3);
    const attended = new Float64Array(N * D);
    for (let head = 0; head < Hn; head++) {
      const q = Array.from({ length: N }, (_, n) =>
        rope(part(n, 0).subarray(head * hd, (head + 1) * hd), ids[n]!, w.ropeAxesDim),
      );
      const k = Array.from({ length: N }, (_, n) =>
        rope(part(n, 1).subarray(head * hd, (head + 1) * hd), ids[n]!, w.ropeAxesDim),
      );
      const v = Array.from({ length: N }, (_, n) => part(n, 2).subarray(head * hd, (head + 1) * hd));
      for (let n = 0; n < N; n++) {
        const scores = k.map((kk) => kk.reduce((a, kv, e) => a + kv * q[n]![e]!, 0) / Math.sqrt(hd));
        const top = Math.max(...scores);
        const weights = scores.map((s) => Math.exp(s - top));
        const total = weights.reduce((a, p) => a + p, 0);
        for (let e = 0; e < hd; e++) {
          attended[n * D + head * hd + e] = weights.reduce((a, p, j) => a + (p / total) * v[j]![e]!, 0);
        }
      }
    }
    const attT: Matrix = { rows: T, cols: D, data: attended.slice(0, T * D) };
    const attI: Matrix = { rows: L, cols: D, data: attended.slice(T * D) };
    const gated = (x0: Matrix, gate: Float64Array, y: Matrix): Matrix => ({
      ...x0,
      data: x0.data.map((v, i) => v + gate[i % D]! * y.data[i]!),
    });
    img = gated(img, m(mi, 2), linear(w, `block${b}.image.attentionOut`, attI));
    txt = gated(txt, m(mt, 2), linear(w, `block${b}.text.attentionOut`, attT));
    const ff = (stream: string, x0: Matrix, mod: Float64Array) =>
      linear(
        w,
        `block${b}.${stream}.mlpOut`,
        map(linear(w, `block${b}.${stream}.mlpIn`, modulate(layerNorm(x0), m(mod, 3), m(mod, 4))), gelu),
      );
    const ffI = ff('image', img, mi);
    const ffT = ff('text', txt, mt);
    img = gated(img, m(mi, 5), ffI);
    txt = gated(txt, m(mt, 5), ffT);
  }
  const norm = linear(w, 'normOut', cond).data;
  const out = linear(w, 'projectionOut', modulate(layerNorm(img), chunk(norm, 1, 2), chunk(norm, 0, 2)));
  // unpacking, the inverse of the packing above
  const u = new Float64Array(H * W * C);
  for (let i = 0; i < h; i++)
    for (let j = 0; j < wd; j++)
      for (let c = 0; c < C; c++)
        for (let dy = 0; dy < 2; dy++)
          for (let dx = 0; dx < 2; dx++)
            u[((2 * i + dy) * W + 2 * j + dx) * C + c] =
              out.data[(i * wd + j) * 4 * C + c * 4 + dy * 2 + dx]!;
  return u;
}

/** The reference's weights from a saved TinyFluxTransformer (`save` through a memory IOHandler). */
export async function fluxReferenceWeights(model: {
  save(handler: import('@tensorflow/tfjs-core').io.IOHandler): Promise<unknown>;
  config: {
    hiddenDim: number;
    numHeads: number;
    depth: number;
    ropeAxesDim: readonly [number, number, number];
    guidanceEmbedding: boolean;
    pooledEmbeddingDim: number;
  };
}): Promise<FluxReferenceWeights> {
  const tf = await import('@tensorflow/tfjs-core');
  let artifacts: import('@tensorflow/tfjs-core').io.ModelArtifacts | undefined;
  await model.save({
    save: async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  });
  const data = artifacts!.weightData!;
  const buffer = Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
  const tensors = tf.io.decodeWeights(buffer, artifacts!.weightSpecs!);
  const values = new Map(Object.entries(tensors).map(([name, t]) => [name, Float64Array.from(t.dataSync())]));
  tf.dispose(Object.values(tensors));
  const { hiddenDim, numHeads, depth, ropeAxesDim, guidanceEmbedding, pooledEmbeddingDim } = model.config;
  return {
    get: (name) => {
      const v = values.get(name);
      if (!v) throw new Error(`no weight ${name}`);
      return v;
    },
    hiddenDim,
    numHeads,
    depth,
    ropeAxesDim,
    acceptsGuidance: guidanceEmbedding,
    pooled: pooledEmbeddingDim > 0,
  };
}
