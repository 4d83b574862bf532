import type { Adapter, Target } from '@almora/lora';
import { loraConfig, readPeftAdapter, type SafetensorsDType, writePeftAdapter } from '@almora/peft';
import { InvalidArgumentError, transpose } from '@almora/tensor';
import { writeFileAtomic } from '@almora/training';

/** LoRA adapters of the attention head with their hyper-parameters, as PEFT stores them. */
export interface PeftAdapters {
  adapters: Partial<Record<Target, Adapter>>;
  rank: number;
  alpha: number;
}

/** The head's projections by PEFT module path. */
const MODULE: Record<Target, string> = { q: 'attention.q_proj', k: 'attention.k_proj', v: 'attention.v_proj' };

/**
 * Writes `adapter_config.json` and `adapter_model.safetensors` in PEFT's layout, each file
 * atomically. PEFT's nn.Linear computes x·(W₀ + s·B_p·A_p)ᵀ with A_p ∈ R^{r×d_in},
 * B_p ∈ R^{d_out×r}; the paper's W = W* + s·B·A has B ∈ R^{d_in×r}, A ∈ R^{r×d_out}; so
 * lora_A = Bᵀ and lora_B = Aᵀ.
 */
export async function exportPeft(dir: string, peft: PeftAdapters, dtype: SafetensorsDType = 'F32'): Promise<void> {
  const targets = (Object.keys(peft.adapters) as Target[]).sort();
  const modules = Object.fromEntries(targets.map((t) => [MODULE[t], { lora_A: transpose(peft.adapters[t]!.b), lora_B: transpose(peft.adapters[t]!.a) }]));
  const config = loraConfig({ r: peft.rank, lora_alpha: peft.alpha, target_modules: targets.map((t) => `${t}_proj`) });
  await writePeftAdapter(dir, { config, modules }, { dtype, writeFile: writeFileAtomic });
}

/**
 * Reads adapters written by {@link exportPeft} or by PEFT itself for the head's modules
 * (`attention.q_proj`, `k_proj`, `v_proj`), with @almora/peft's checks (every tensor a targeted
 * module's lora_A or lora_B, shapes consistent with r, values finite) and the head's own: one r
 * and lora_alpha, scaling lora_alpha / r, no other modules. Anything else is a typed error.
 */
export async function importPeft(dir: string): Promise<PeftAdapters> {
  const { config, modules } = await readPeftAdapter(dir);
  if (config.use_rslora) throw new InvalidArgumentError(`${dir}/adapter_config.json: use_rslora scales by α/√r, which almora does not use`);
  if (Object.keys(config.rank_pattern).length + Object.keys(config.alpha_pattern).length > 0)
    throw new InvalidArgumentError(`${dir}/adapter_config.json: rank_pattern and alpha_pattern are not supported (one r and lora_alpha for the head)`);
  const adapters: Partial<Record<Target, Adapter>> = {};
  for (const [module, { lora_A, lora_B }] of Object.entries(modules)) {
    const target = (Object.keys(MODULE) as Target[]).find((t) => MODULE[t] === module);
    if (!target) throw new InvalidArgumentError(`${dir}/adapter_model.safetensors: ${module} is not one of ${Object.values(MODULE).join(', ')}`);
    adapters[target] = { b: transpose(lora_A), a: transpose(lora_B) };
  }
  return { adapters, rank: config.r, alpha: config.lora_alpha };
}
