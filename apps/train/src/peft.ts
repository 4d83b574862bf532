import type { Adapter, Target } from '@almora/lora';
import { loraConfig, matrixToTensor, readPeftAdapter, type SafetensorsDType, writeModelFolder, writePeftAdapter } from '@almora/peft';
import { InvalidArgumentError, type Matrix, transpose } from '@almora/tensor';
import { writeFileAtomic } from '@almora/training';

/** LoRA adapters of the attention head with their hyper-parameters, as PEFT stores them. */
export interface PeftAdapters {
  adapters: Partial<Record<Target, Adapter>>;
  rank: number;
  alpha: number;
}

/**
 * The head's projections by PEFT module path: the children of every Hugging Face decoder's
 * attention block (`LlamaAttention`, `Qwen3Attention`: q_proj, k_proj, v_proj) under `self_attn`,
 * so PEFT applies the adapter to any torch module that holds such a block as `self_attn`.
 */
const MODULE: Record<Target, string> = { q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj' };

/** Where almora before 0.2 wrote the same projections; still read, so adapters saved then load. */
const LEGACY_MODULE: Record<Target, string> = { q: 'attention.q_proj', k: 'attention.k_proj', v: 'attention.v_proj' };

/** The frozen attention head, as the base model an adapter folder names. */
export interface HeadBase {
  /** W*_q, W*_k, W*_v in the paper's orientation (d_in×d_out, y = x·W). */
  frozen: Record<Target, Matrix>;
  heads: number;
  causal: boolean;
}

/**
 * Writes `adapter_config.json` and `adapter_model.safetensors` in PEFT's layout, each file
 * atomically. PEFT's nn.Linear computes x·(W₀ + s·B_p·A_p)ᵀ with A_p ∈ R^{r×d_in},
 * B_p ∈ R^{d_out×r}; the paper's W = W* + s·B·A has B ∈ R^{d_in×r}, A ∈ R^{r×d_out}; so
 * lora_A = Bᵀ and lora_B = Aᵀ.
 */
export async function exportPeft(dir: string, peft: PeftAdapters, dtype: SafetensorsDType = 'F32', baseModel: string | null = null): Promise<void> {
  const targets = (Object.keys(peft.adapters) as Target[]).sort();
  const modules = Object.fromEntries(targets.map((t) => [MODULE[t], { lora_A: transpose(peft.adapters[t]!.b), lora_B: transpose(peft.adapters[t]!.a) }]));
  // task_type stays null: PEFT's task classes call the base as a transformers model (input_ids, …),
  // and this base is a bare attention block, which only the generic PeftModel passes inputs to.
  const config = loraConfig({ r: peft.rank, lora_alpha: peft.alpha, target_modules: targets.map((t) => `${t}_proj`), base_model_name_or_path: baseModel });
  await writePeftAdapter(dir, { config, modules }, { dtype, writeFile: writeFileAtomic });
}

/**
 * Reads adapters written by {@link exportPeft} or by PEFT itself for the head's modules
 * (`self_attn.q_proj`, `k_proj`, `v_proj`, or the old `attention.*` paths), with @almora/peft's checks (every tensor a targeted
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
    const target = (Object.keys(MODULE) as Target[]).find((t) => MODULE[t] === module || LEGACY_MODULE[t] === module);
    if (!target) throw new InvalidArgumentError(`${dir}/adapter_model.safetensors: ${module} is not one of ${Object.values(MODULE).join(', ')}`);
    if (adapters[target])
      throw new InvalidArgumentError(`${dir}/adapter_model.safetensors: ${target}_proj appears under both ${MODULE[target]} and ${LEGACY_MODULE[target]}`);
    adapters[target] = { b: transpose(lora_A), a: transpose(lora_B) };
  }
  return { adapters, rank: config.r, alpha: config.lora_alpha };
}

/**
 * Writes the frozen head as a base model folder beside its adapters: `config.json` (almora's own
 * architecture name, the head's shape and softmax scale β) and `model.safetensors` with
 * `self_attn.{q,k,v}_proj.weight` out×in as torch.nn.Linear holds them (W*ᵀ), so
 * PeftModel.from_pretrained(head, adapters) followed by merge_and_unload() gives the trained head.
 */
export async function saveHeadBase(dir: string, base: HeadBase, dtype: SafetensorsDType = 'F32'): Promise<void> {
  const d = base.frozen.q.rows;
  const headDim = d / base.heads;
  const config = {
    architectures: ['AlmoraAttentionHead'],
    model_type: 'almora_attention_head',
    hidden_size: d,
    num_attention_heads: base.heads,
    head_dim: headDim,
    causal: base.causal,
    // The attention core's default softmax scale β = 1/√head_dim; the trainer sets no other.
    attention_scale: 1 / Math.sqrt(headDim),
    attention_bias: false,
    torch_dtype: dtype === 'F64' ? 'float64' : 'float32',
  };
  const tensors = Object.fromEntries((Object.keys(MODULE) as Target[]).map((t) => [`${MODULE[t]}.weight`, matrixToTensor(transpose(base.frozen[t]), dtype)]));
  await writeModelFolder(dir, { config, tensors }, { writeFile: writeFileAtomic });
}
