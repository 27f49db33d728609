import type { AnalyticGMFlow, Random, Sigma, Teacher } from '@piflow/core';
import type * as tf from '@tensorflow/tfjs-core';

/** An analytic GM flow as the trainer's teacher: its exact velocity, no metadata. */
export function flowTeacher(flow: AnalyticGMFlow): Teacher {
  return { metadata: {}, velocity: async (x: tf.Tensor, s: Sigma) => flow.velocity(x, s) };
}

/** The trainer's `data` option drawing x0 from the flow's own mixture. */
export function flowData(flow: AnalyticGMFlow): (n: number, random: Random) => { x0: tf.Tensor } {
  return (n, random) => ({ x0: flow.sample(n, random).x0 });
}

/** The same teacher answering synchronously too (`velocitySync`), as in-process teachers do. */
export function flowTeacherSync(flow: AnalyticGMFlow): Teacher {
  return {
    metadata: {},
    velocitySync: (x: tf.Tensor, s: Sigma) => flow.velocity(x, s),
    velocity: async (x: tf.Tensor, s: Sigma) => flow.velocity(x, s),
  };
}
