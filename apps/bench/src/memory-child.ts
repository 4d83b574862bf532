// One measurement of the memory suite, alone in its process so that its peak RSS is its own:
// reads a spec from argv, runs the layer's forward and backward, prints seconds and peak RSS as JSON.
import { openBackend } from '@almora/backends';
import { randomNormal, Rng, scale } from '@almora/tensor';
import { type AttentionLayer, loraAttention, type LayerOptions } from '@almora/lora';

interface MemorySpec {
  length: number;
  dModel: number;
  heads: number;
  options: LayerOptions;
  seed: number;
  /** A name of @almora/backends' registry. */
  backend: string;
}

const spec = JSON.parse(process.argv[2]) as MemorySpec;
const rng = new Rng(spec.seed);
const d = spec.dModel;
const linear = () => scale(randomNormal(d, d, rng), 1 / Math.sqrt(d));
const adapter = () => ({ lora_A: scale(randomNormal(4, d, rng), 0.1), lora_B: scale(randomNormal(d, 4, rng), 0.1) });
const layer: AttentionLayer = {
  heads: spec.heads,
  weights: { q_proj: linear(), k_proj: linear(), v_proj: linear(), o_proj: linear() },
  lora: { r: 4, alpha: 8, adapters: { q_proj: adapter(), v_proj: adapter() } },
};
// Small inputs keep Γ low, so the fast path is in its regime at every length measured.
const x = scale(randomNormal(spec.length, d, rng), 0.2);
const upstream = randomNormal(spec.length, d, rng);
const opened = await openBackend(spec.backend);
const before = process.memoryUsage().rss;
const t0 = performance.now();
const forward = loraAttention(layer, x, { ...spec.options, backend: opened.backend });
const { grads } = forward.backward(upstream);
const seconds = (performance.now() - t0) / 1000;
opened.close();
if (!grads.q_proj || !grads.v_proj) throw new Error('no adapter gradients');
process.stdout.write(
  JSON.stringify({
    seconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    startRssBytes: before,
    chosen: forward.report.chosen,
    keepsProbabilities: forward.report.heads.some((h) => h.keepsProbabilities),
  }),
);
