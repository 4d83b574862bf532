import type { LoraProblem, Target } from '@almora/lora';
import type { Matrix } from '@almora/tensor';
import { tf, useTfjs, type TfjsBackend } from './tfjs.js';

function tensor(m: Matrix): tf.Tensor2D {
  return tf.tensor2d(Float32Array.from(m.toFlat()), [m.rows, m.cols]);
}

/**
 * The same loss as almora's, ½‖softmax(β·QKᵀ)·V − Y‖² with LoRA-adapted W_Q, W_K, W_V, written in
 * tfjs ops and differentiated by tf.grads with respect to every adapter: the way a tfjs user gets
 * these gradients today. Returns a function that computes and reads back all gradients, and a
 * disposer.
 */
export async function tfjsLoraGradients(backend: TfjsBackend, problem: LoraProblem): Promise<{ run: () => void; dispose: () => void }> {
  await useTfjs(backend);
  const x = tensor(problem.x as Matrix);
  const y = tensor(problem.target as Matrix);
  const frozen = { q: tensor(problem.weights.q), k: tensor(problem.weights.k), v: tensor(problem.weights.v) };
  const targets = (['q', 'k', 'v'] as Target[]).filter((t) => problem.adapters[t]);
  const params: tf.Tensor2D[] = targets.flatMap((t) => [tensor(problem.adapters[t]!.a), tensor(problem.adapters[t]!.b)]);
  const rank = problem.adapters[targets[0]]!.a.rows;
  const s = problem.alpha / rank;
  const beta = problem.beta!;
  const loss = (...adapterTensors: tf.Tensor[]) => {
    const weight = (t: Target) => {
      const i = targets.indexOf(t);
      if (i < 0) return frozen[t];
      return tf.add(frozen[t], tf.mul(tf.matMul(adapterTensors[2 * i + 1], adapterTensors[2 * i]), s));
    };
    const q = tf.matMul(x, weight('q'));
    const k = tf.matMul(x, weight('k'));
    const v = tf.matMul(x, weight('v'));
    const attention = tf.softmax(tf.mul(tf.matMul(q, k, false, true), beta));
    return tf.mul(tf.sum(tf.square(tf.sub(tf.matMul(attention, v), y))), 0.5) as tf.Scalar;
  };
  const gradients = tf.grads(loss);
  return {
    run: () => {
      const grads = gradients(params);
      for (const g of grads) g.dataSync();
      tf.dispose(grads);
    },
    dispose: () => tf.dispose([x, y, frozen.q, frozen.k, frozen.v, ...params]),
  };
}
