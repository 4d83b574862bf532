import { add, matmul, type Matrix, scale, sub, toDType, transpose } from '@almora/tensor';
import type { PeftAdapter } from './adapter.js';
import { compileConfig, MATCH_BUDGET_STEPS, moduleSettings } from './config.js';
import { PeftError, PeftShapeError } from './errors.js';

/**
 * The update an adapter makes to `module`'s weight: scaling·lora_B·lora_A (out×in), computed in
 * float64, transposed to in×out when the config says fan_in_fan_out (a weight stored in×out).
 */
export function adapterDelta(adapter: PeftAdapter, module: string): Matrix {
  const weights = Object.hasOwn(adapter.modules, module) ? adapter.modules[module] : undefined;
  if (!weights) throw new PeftError(`the adapter has no module ${module}`);
  const compiled = compileConfig(adapter.config, (m) => new PeftError(m));
  const { scaling } = moduleSettings(compiled, module, { steps: MATCH_BUDGET_STEPS });
  const delta = scale(matmul(toDType(weights.lora_B, 'float64'), toDType(weights.lora_A, 'float64')), scaling);
  return adapter.config.fan_in_fan_out ? transpose(delta) : delta;
}

/** W ± delta for every adapted module's `<module>.weight`, the rest of `weights` as given. */
function apply(weights: Readonly<Record<string, Matrix>>, adapter: PeftAdapter, sign: 1 | -1, name: string): Record<string, Matrix> {
  const out = Object.assign(Object.create(null) as Record<string, Matrix>, weights);
  for (const module of Object.keys(adapter.modules)) {
    const key = `${module}.weight`;
    const w = Object.hasOwn(weights, key) ? weights[key] : undefined;
    if (!w) throw new PeftError(`${name}: the weights have no ${key} for the adapter of ${module}`);
    const delta = adapterDelta(adapter, module);
    if (w.rows !== delta.rows || w.cols !== delta.cols) {
      throw new PeftShapeError(
        `${name}: ${key} is ${w.rows}×${w.cols}, the adapter's update of ${module} is ${delta.rows}×${delta.cols}${adapter.config.fan_in_fan_out ? ' (fan_in_fan_out: in×out)' : ''}`,
      );
    }
    const d = toDType(delta, w.dtype);
    out[key] = sign === 1 ? add(w, d) : sub(w, d);
  }
  return out;
}

/**
 * PEFT's `merge_and_unload`: a copy of `weights` (a state dict of out×in matrices by key) with
 * every adapted module's `<module>.weight` replaced by W + scaling·lora_B·lora_A, in W's dtype.
 * A missing or misshapen weight is a typed error.
 */
export function mergeAdapter(weights: Readonly<Record<string, Matrix>>, adapter: PeftAdapter): Record<string, Matrix> {
  return apply(weights, adapter, 1, 'mergeAdapter');
}

/** The inverse of {@link mergeAdapter} (PEFT's `unmerge`): W − scaling·lora_B·lora_A for every adapted module. */
export function unmergeAdapter(weights: Readonly<Record<string, Matrix>>, adapter: PeftAdapter): Record<string, Matrix> {
  return apply(weights, adapter, -1, 'unmergeAdapter');
}
