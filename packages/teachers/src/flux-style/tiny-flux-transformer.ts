import { assertNumber, assertTensor, createRandom, InvalidArgumentError, type Random } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { LatentTransformerInputs, LatentTransformerModel } from './latent-transformer-teacher';

export interface TinyFluxTransformerConfig {
  /** Features per packed token (latent channels · patch²; FLUX: 16·4 = 64). */
  tokenDim?: number;
  /** Width of the per-token text embeddings (FLUX: 4096; small here). */
  textEmbeddingDim?: number;
  /** Width of the pooled text embedding (FLUX: 768); 0 for none (Qwen-Image style). */
  pooledEmbeddingDim?: number;
  /** Whether the model takes an embedded guidance value (FLUX.1-dev style). */
  guidanceEmbedding?: boolean;
  /** Hidden width D. */
  hiddenDim?: number;
  /** Attention heads (D must divide by it; head width must split into the three RoPE axes). */
  numHeads?: number;
  /** Number of joint-attention (double-stream) blocks. */
  depth?: number;
  /** Rotary embedding widths per position-id axis (sum = head width, each even). */
  ropeAxesDim?: readonly [number, number, number];
  /** Seed of the weight initialisation. */
  seed?: number;
}

const sinusoidalWidth = 32;

/**
 * A small transformer with FLUX.1's interface and structure, built here from plain tfjs variables:
 * packed 2×2-patch image tokens [B, L, 64] and text tokens [B, T, D_text] are embedded separately, a
 * conditioning vector (sinusoidal timestep embedding of σ·1000, optional embedded guidance, pooled text
 * embedding) modulates every block (adaLN), and `depth` joint-attention blocks run attention over the
 * concatenated [text; image] sequence with 3-axis rotary position embeddings from the position ids, with
 * separate weights per stream. The output is a velocity in the same packed layout [B, L, 64].
 */
export class TinyFluxTransformer implements LatentTransformerModel {
  readonly tokenDim: number;
  readonly textEmbeddingDim: number;
  readonly pooledEmbeddingDim: number | undefined;
  readonly acceptsGuidance: boolean;
  readonly hiddenDim: number;
  readonly numHeads: number;
  readonly depth: number;
  readonly ropeAxesDim: readonly [number, number, number];
  /** The full configuration (what `save` writes). */
  readonly config: Required<TinyFluxTransformerConfig>;
  /** Trainable variables, in a stable order. */
  readonly variables: tf.Variable[] = [];
  private readonly weights = new Map<string, tf.Variable>();

  constructor(config: TinyFluxTransformerConfig = {}) {
    const {
      tokenDim = 64,
      textEmbeddingDim = 32,
      pooledEmbeddingDim = 16,
      guidanceEmbedding = true,
      hiddenDim = 48,
      numHeads = 2,
      depth = 2,
      ropeAxesDim = [4, 10, 10],
      seed = 0,
    } = config;
    assertNumber('tokenDim', tokenDim, { min: 1, integer: true });
    assertNumber('textEmbeddingDim', textEmbeddingDim, { min: 1, integer: true });
    assertNumber('pooledEmbeddingDim', pooledEmbeddingDim, { min: 0, integer: true });
    assertNumber('hiddenDim', hiddenDim, { min: 2, integer: true });
    assertNumber('numHeads', numHeads, { min: 1, integer: true });
    assertNumber('depth', depth, { min: 1, integer: true });
    if (hiddenDim % numHeads !== 0) {
      throw new InvalidArgumentError('numHeads', `a divisor of hiddenDim (${hiddenDim})`, String(numHeads));
    }
    const headDim = hiddenDim / numHeads;
    if (
      !Array.isArray(ropeAxesDim) ||
      ropeAxesDim.length !== 3 ||
      ropeAxesDim.some((d) => !Number.isInteger(d) || d < 0 || d % 2 !== 0) ||
      ropeAxesDim.reduce((a, b) => a + b, 0) !== headDim
    ) {
      throw new InvalidArgumentError(
        'ropeAxesDim',
        `three even widths summing to the head width ${headDim}`,
        JSON.stringify(ropeAxesDim),
      );
    }
    this.tokenDim = tokenDim;
    this.textEmbeddingDim = textEmbeddingDim;
    this.pooledEmbeddingDim = pooledEmbeddingDim > 0 ? pooledEmbeddingDim : undefined;
    this.acceptsGuidance = guidanceEmbedding;
    this.hiddenDim = hiddenDim;
    this.numHeads = numHeads;
    this.depth = depth;
    this.ropeAxesDim = [...ropeAxesDim] as [number, number, number];
    this.config = {
      tokenDim,
      textEmbeddingDim,
      pooledEmbeddingDim,
      guidanceEmbedding,
      hiddenDim,
      numHeads,
      depth,
      ropeAxesDim: this.ropeAxesDim,
      seed,
    };

    const random = createRandom(seed);
    const D = hiddenDim;
    this.linear('imageIn', tokenDim, D, random);
    this.linear('textIn', textEmbeddingDim, D, random);
    this.linear('timeIn', sinusoidalWidth, D, random);
    this.linear('timeOut', D, D, random);
    if (guidanceEmbedding) {
      this.linear('guidanceIn', sinusoidalWidth, D, random);
      this.linear('guidanceOut', D, D, random);
    }
    if (this.pooledEmbeddingDim) {
      this.linear('pooledIn', this.pooledEmbeddingDim, D, random);
      this.linear('pooledOut', D, D, random);
    }
    for (let b = 0; b < depth; b++) {
      for (const stream of ['image', 'text']) {
        const p = `block${b}.${stream}.`;
        this.linear(`${p}modulation`, D, 6 * D, random);
        this.linear(`${p}qkv`, D, 3 * D, random);
        this.linear(`${p}attentionOut`, D, D, random);
        this.linear(`${p}mlpIn`, D, 2 * D, random);
        this.linear(`${p}mlpOut`, 2 * D, D, random);
      }
    }
    this.linear('normOut', D, 2 * D, random);
    this.linear('projectionOut', D, tokenDim, random);
  }

  private linear(name: string, inputs: number, outputs: number, random: Random, std?: number): void {
    const values = random.fillNormal(new Float32Array(inputs * outputs));
    const scale = std ?? 1 / Math.sqrt(inputs);
    for (let i = 0; i < values.length; i++) values[i]! *= scale;
    const w = tf.variable(tf.tensor2d(values, [inputs, outputs]), true);
    const b = tf.variable(tf.zeros([outputs]), true);
    this.weights.set(`${name}.weight`, w);
    this.weights.set(`${name}.bias`, b);
    this.variables.push(w, b);
  }

  private apply(name: string, x: tf.Tensor): tf.Tensor {
    const w = this.weights.get(`${name}.weight`)!;
    const b = this.weights.get(`${name}.bias`)!;
    const inputs = x.shape[x.rank - 1]!;
    const flat = tf.reshape(x, [-1, inputs]);
    return tf.reshape(tf.add(tf.matMul(flat, w), b), [...x.shape.slice(0, -1), w.shape[1]!]);
  }

  /** Velocity in packed-token layout [B, L, tokenDim]. */
  predict(inputs: LatentTransformerInputs): tf.Tensor3D {
    const { hiddenStates, timestep, guidance, encoderHiddenStates, pooledProjections, imageIds, textIds } =
      inputs;
    assertTensor('hiddenStates', hiddenStates, { shape: [null, null, this.tokenDim] });
    const [B, L] = hiddenStates.shape as [number, number, number];
    assertTensor('timestep', timestep, { shape: [B] });
    assertTensor('encoderHiddenStates', encoderHiddenStates, { shape: [B, null, this.textEmbeddingDim] });
    const T = encoderHiddenStates.shape[1]!;
    assertTensor('imageIds', imageIds, { shape: [L, 3] });
    assertTensor('textIds', textIds, { shape: [T, 3] });
    if (this.acceptsGuidance) assertTensor('guidance', guidance, { shape: [B] });
    if (this.pooledEmbeddingDim) {
      assertTensor('pooledProjections', pooledProjections, { shape: [B, this.pooledEmbeddingDim] });
    }
    const D = this.hiddenDim;
    const H = this.numHeads;
    const hd = D / H;
    return tf.tidy(() => {
      // Conditioning vector: timestep (+ guidance) (+ pooled text), as FLUX's CombinedTimestepGuidanceTextProjEmbeddings.
      let vec = this.mlp('timeIn', 'timeOut', sinusoidal(tf.mul(timestep, 1000)));
      if (this.acceptsGuidance)
        vec = tf.add(vec, this.mlp('guidanceIn', 'guidanceOut', sinusoidal(tf.mul(guidance!, 1000))));
      if (this.pooledEmbeddingDim) vec = tf.add(vec, this.mlp('pooledIn', 'pooledOut', pooledProjections!));
      const cond = tf.reshape(silu(vec), [B, 1, D]);

      let img = this.apply('imageIn', hiddenStates);
      let txt = this.apply('textIn', encoderHiddenStates);
      const { cos, sin } = rotaryTables(tf.concat([textIds, imageIds], 0), this.ropeAxesDim);

      for (let b = 0; b < this.depth; b++) {
        const mi = tf.split(this.apply(`block${b}.image.modulation`, cond), 6, -1);
        const mt = tf.split(this.apply(`block${b}.text.modulation`, cond), 6, -1);
        const qkvImg = tf.split(
          this.apply(`block${b}.image.qkv`, modulate(layerNorm(img), mi[0]!, mi[1]!)),
          3,
          -1,
        );
        const qkvTxt = tf.split(
          this.apply(`block${b}.text.qkv`, modulate(layerNorm(txt), mt[0]!, mt[1]!)),
          3,
          -1,
        );
        const q = heads(tf.concat([qkvTxt[0]!, qkvImg[0]!], 1), H, hd);
        const k = heads(tf.concat([qkvTxt[1]!, qkvImg[1]!], 1), H, hd);
        const v = heads(tf.concat([qkvTxt[2]!, qkvImg[2]!], 1), H, hd);
        const scores = tf.div(
          tf.matMul(rotate(q, cos, sin), rotate(k, cos, sin), false, true),
          Math.sqrt(hd),
        );
        const attended = mergeHeads(tf.matMul(tf.softmax(scores), v), B, H, T + L, hd);
        const [attTxt, attImg] = tf.split(attended, [T, L], 1) as [tf.Tensor, tf.Tensor];
        img = tf.add(img, tf.mul(mi[2]!, this.apply(`block${b}.image.attentionOut`, attImg)));
        txt = tf.add(txt, tf.mul(mt[2]!, this.apply(`block${b}.text.attentionOut`, attTxt)));
        const ffImg = this.mlpGelu(`block${b}.image.`, modulate(layerNorm(img), mi[3]!, mi[4]!));
        const ffTxt = this.mlpGelu(`block${b}.text.`, modulate(layerNorm(txt), mt[3]!, mt[4]!));
        img = tf.add(img, tf.mul(mi[5]!, ffImg));
        txt = tf.add(txt, tf.mul(mt[5]!, ffTxt));
      }
      const [scale, shift] = tf.split(this.apply('normOut', cond), 2, -1) as [tf.Tensor, tf.Tensor];
      return this.apply('projectionOut', modulate(layerNorm(img), shift, scale)) as tf.Tensor3D;
    });
  }

  private mlp(first: string, second: string, x: tf.Tensor): tf.Tensor {
    return this.apply(second, silu(this.apply(first, x)));
  }

  private mlpGelu(prefix: string, x: tf.Tensor): tf.Tensor {
    return this.apply(`${prefix}mlpOut`, gelu(this.apply(`${prefix}mlpIn`, x)));
  }

  /** Saves configuration and weights through a tfjs IOHandler (e.g. `fileSystemIO(dir)`, `indexeddb://…`). */
  async save(handler: tf.io.IOHandler): Promise<tf.io.SaveResult> {
    if (!handler || typeof handler.save !== 'function') {
      throw new InvalidArgumentError('handler', 'a tfjs IOHandler with save()', typeof handler);
    }
    const named = [...this.weights].map(([name, tensor]) => ({ name, tensor }));
    const { data, specs } = await tf.io.encodeWeights(named);
    return handler.save({
      modelTopology: {
        className: 'TinyFluxTransformer',
        config: this.config,
      } as unknown as tf.io.ModelArtifacts['modelTopology'],
      format: 'piflow-tiny-flux-transformer',
      generatedBy: '@piflow/teachers',
      weightSpecs: specs,
      weightData: data,
    });
  }

  /** Loads a transformer saved with {@link TinyFluxTransformer.save}. */
  static async load(handler: tf.io.IOHandler): Promise<TinyFluxTransformer> {
    if (!handler || typeof handler.load !== 'function') {
      throw new InvalidArgumentError('handler', 'a tfjs IOHandler with load()', typeof handler);
    }
    const artifacts = await handler.load();
    const topology = artifacts.modelTopology as
      | { className?: string; config?: TinyFluxTransformerConfig }
      | undefined;
    if (
      artifacts.format !== 'piflow-tiny-flux-transformer' ||
      topology?.className !== 'TinyFluxTransformer'
    ) {
      throw new InvalidArgumentError(
        'handler',
        'a saved TinyFluxTransformer',
        `format ${JSON.stringify(artifacts.format)}`,
      );
    }
    const model = new TinyFluxTransformer(topology.config);
    const data = artifacts.weightData;
    const buffer = Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data!;
    const tensors = tf.io.decodeWeights(buffer, artifacts.weightSpecs ?? []);
    try {
      for (const [name, variable] of model.weights) {
        const value = tensors[name];
        if (!value || value.shape.join() !== variable.shape.join()) {
          model.dispose();
          throw new InvalidArgumentError(
            `weights.${name}`,
            `a tensor of shape [${variable.shape.join(', ')}]`,
            value ? `[${value.shape.join(', ')}]` : 'nothing',
          );
        }
        variable.assign(value);
      }
    } finally {
      tf.dispose(Object.values(tensors));
    }
    return model;
  }

  /** Frees the variables. */
  dispose(): void {
    tf.dispose(this.variables);
    this.weights.clear();
    this.variables.length = 0;
  }
}

function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

function gelu(x: tf.Tensor): tf.Tensor {
  // tanh approximation, as FLUX's feed-forward uses
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

function layerNorm(x: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-6)));
}

/** x·(1 + scale) + shift with [B, 1, D] modulation. */
function modulate(x: tf.Tensor, shift: tf.Tensor, scale: tf.Tensor): tf.Tensor {
  return tf.add(tf.mul(x, tf.add(1, scale)), shift);
}

/** [B] → [B, 32] sinusoidal features of t (t already in units of 1000 per σ). */
function sinusoidal(t: tf.Tensor): tf.Tensor {
  const half = sinusoidalWidth / 2;
  const freqs = tf.tensor1d(
    Float32Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half)),
  );
  const args = tf.mul(tf.reshape(t, [-1, 1]), tf.reshape(freqs, [1, half]));
  return tf.concat([tf.cos(args), tf.sin(args)], 1);
}

/** [B, N, D] → [B·H, N, hd] */
function heads(x: tf.Tensor, H: number, hd: number): tf.Tensor {
  const [B, N] = x.shape as [number, number, number];
  return tf.reshape(tf.transpose(tf.reshape(x, [B, N, H, hd]), [0, 2, 1, 3]), [B * H, N, hd]);
}

/** [B·H, N, hd] → [B, N, H·hd] */
function mergeHeads(x: tf.Tensor, B: number, H: number, N: number, hd: number): tf.Tensor {
  return tf.reshape(tf.transpose(tf.reshape(x, [B, H, N, hd]), [0, 2, 1, 3]), [B, N, H * hd]);
}

/** cos / sin tables [N, hd/2] of the 3-axis rotary embedding (θ = 10000, FLUX's EmbedND). */
function rotaryTables(ids: tf.Tensor, axesDim: readonly number[]): { cos: tf.Tensor; sin: tf.Tensor } {
  const parts: tf.Tensor[] = [];
  axesDim.forEach((dim, axis) => {
    if (dim === 0) return;
    const freqs = Float32Array.from({ length: dim / 2 }, (_, i) => 10000 ** (-(2 * i) / dim));
    const pos = tf.slice(ids, [0, axis], [-1, 1]);
    parts.push(tf.mul(pos, tf.reshape(tf.tensor1d(freqs), [1, dim / 2])));
  });
  const angles = tf.concat(parts, 1);
  return { cos: tf.cos(angles), sin: tf.sin(angles) };
}

/** Rotates consecutive feature pairs (x₂ᵢ, x₂ᵢ₊₁) of [B·H, N, hd] by the angles of each position. */
function rotate(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const [BH, N, hd] = x.shape as [number, number, number];
  const pairs = tf.reshape(x, [BH, N, hd / 2, 2]);
  const [even, odd] = tf.split(pairs, 2, -1) as [tf.Tensor, tf.Tensor];
  const c = tf.reshape(cos, [1, N, hd / 2, 1]);
  const s = tf.reshape(sin, [1, N, hd / 2, 1]);
  const rotated = tf.concat(
    [tf.sub(tf.mul(even, c), tf.mul(odd, s)), tf.add(tf.mul(even, s), tf.mul(odd, c))],
    -1,
  );
  return tf.reshape(rotated, [BH, N, hd]);
}
