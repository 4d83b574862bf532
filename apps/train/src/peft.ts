import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Adapter, Target } from '@almora/lora';
import { fromFlat, InvalidArgumentError, transpose } from '@almora/tensor';
import { writeFileAtomic } from './checkpoint.js';
import { decodeSafetensors, encodeSafetensors, type SafetensorsDType, type SafetensorsTensor } from './safetensors.js';
import { describeValue } from './describe.js';

/** LoRA adapters with their hyper-parameters, as PEFT stores them. */
export interface PeftAdapters {
  adapters: Partial<Record<Target, Adapter>>;
  rank: number;
  alpha: number;
}

const MODULE: Record<Target, string> = { q: 'q_proj', k: 'k_proj', v: 'v_proj' };
const PREFIX = 'base_model.model.attention';

function key(target: Target, which: 'lora_A' | 'lora_B'): string {
  return `${PREFIX}.${MODULE[target]}.${which}.weight`;
}

/**
 * Writes `adapter_config.json` and `adapter_model.safetensors` in PEFT's layout. PEFT's nn.Linear
 * computes x·(W₀ + s·B_p·A_p)ᵀ with A_p ∈ R^{r×d_in}, B_p ∈ R^{d_out×r}; the paper's
 * W = W* + s·B·A has B ∈ R^{d_in×r}, A ∈ R^{r×d_out}; so lora_A = Bᵀ and lora_B = Aᵀ.
 */
export async function exportPeft(dir: string, peft: PeftAdapters, dtype: SafetensorsDType = 'F32'): Promise<void> {
  const tensors: Record<string, SafetensorsTensor> = {};
  const targets = (Object.keys(peft.adapters) as Target[]).sort();
  for (const t of targets) {
    const { a, b } = peft.adapters[t]!;
    const data = (m: ReturnType<typeof transpose>) => (dtype === 'F32' ? Float32Array.from(m.toFlat()) : Float64Array.from(m.toFlat()));
    tensors[key(t, 'lora_A')] = { dtype, shape: [b.cols, b.rows], data: data(transpose(b)) };
    tensors[key(t, 'lora_B')] = { dtype, shape: [a.cols, a.rows], data: data(transpose(a)) };
  }
  await writePeftFiles(dir, { taskType: null, baseModel: null, r: peft.rank, alpha: peft.alpha, targetModules: targets.map((t) => MODULE[t]) }, tensors);
}

/** What PEFT's adapter_config.json says beyond the fixed fields (plain LoRA: no dropout, bias, rsLoRA). */
export interface PeftFileConfig {
  taskType: 'CAUSAL_LM' | null;
  baseModel: string | null;
  r: number;
  alpha: number;
  targetModules: string[];
}

/** Writes `adapter_config.json` and `adapter_model.safetensors` as PEFT does, both atomically, creating `dir`. */
export async function writePeftFiles(dir: string, settings: PeftFileConfig, tensors: Record<string, SafetensorsTensor>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const config = {
    peft_type: 'LORA',
    task_type: settings.taskType,
    base_model_name_or_path: settings.baseModel,
    r: settings.r,
    lora_alpha: settings.alpha,
    target_modules: settings.targetModules,
    lora_dropout: 0,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    inference_mode: true,
  };
  await writeFileAtomic(path.join(dir, 'adapter_config.json'), `${JSON.stringify(config, null, 2)}\n`);
  await writeFileAtomic(path.join(dir, 'adapter_model.safetensors'), encodeSafetensors({ tensors, metadata: { format: 'pt' } }));
}

/** The bytes of one adapter file; a missing or unreadable file is a typed error naming it. */
async function readAdapterFile(dir: string, name: string): Promise<Buffer> {
  try {
    return await readFile(path.join(dir, name));
  } catch (error) {
    throw new InvalidArgumentError(`cannot read ${name} in ${dir}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Reads adapters written by {@link exportPeft} or by PEFT itself (for these module names). Every
 * tensor in the file must belong to a listed target module and hold finite values: nothing is
 * dropped or loaded silently wrong; anything else is a typed error.
 */
export async function importPeft(dir: string): Promise<PeftAdapters> {
  let parsed: unknown;
  try {
    parsed = JSON.parse((await readAdapterFile(dir, 'adapter_config.json')).toString('utf8'));
  } catch (error) {
    if (error instanceof SyntaxError) throw new InvalidArgumentError(`adapter_config.json in ${dir} is not valid JSON: ${error.message}`);
    throw error;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError(`adapter_config.json in ${dir} must hold a JSON object, got ${describeValue(parsed)}`);
  const config = parsed as Record<string, unknown>;
  if (config.peft_type !== 'LORA') throw new InvalidArgumentError(`adapter_config.json: peft_type is ${describeValue(config.peft_type)}, expected "LORA"`);
  if (config.use_rslora === true) throw new InvalidArgumentError('adapter_config.json: use_rslora scales by α/√r, which almora does not use');
  const rank = config.r;
  const alpha = config.lora_alpha;
  if (!Number.isSafeInteger(rank) || (rank as number) <= 0) throw new InvalidArgumentError(`adapter_config.json: r must be a positive integer, got ${describeValue(rank)}`);
  // JSON.parse reads 1e999 as Infinity: a finite check, not only a sign check.
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || !(alpha > 0)) throw new InvalidArgumentError(`adapter_config.json: lora_alpha must be a finite positive number, got ${describeValue(alpha)}`);
  const modules = config.target_modules;
  if (!Array.isArray(modules) || modules.length === 0) throw new InvalidArgumentError(`adapter_config.json: target_modules must be a non-empty list, got ${describeValue(modules)}`);
  const file = decodeSafetensors(new Uint8Array(await readAdapterFile(dir, 'adapter_model.safetensors')));
  const listed = (Object.keys(MODULE) as Target[]).filter((t) => modules.includes(MODULE[t]));
  const unlisted = Object.keys(file.tensors).filter((name) => !listed.some((t) => name === key(t, 'lora_A') || name === key(t, 'lora_B')));
  if (unlisted.length > 0) throw new InvalidArgumentError(`adapter_model.safetensors holds ${unlisted.join(', ')}, which target_modules (${modules.map(describeValue).join(', ')}) does not list`);
  const adapters: Partial<Record<Target, Adapter>> = {};
  for (const module of modules) {
    const target = (Object.keys(MODULE) as Target[]).find((t) => MODULE[t] === module);
    if (!target) throw new InvalidArgumentError(`adapter_config.json: target module ${describeValue(module)} is not one of q_proj, k_proj, v_proj`);
    const loraA = file.tensors[key(target, 'lora_A')];
    const loraB = file.tensors[key(target, 'lora_B')];
    if (!loraA || !loraB) throw new InvalidArgumentError(`adapter_model.safetensors has no ${key(target, loraA ? 'lora_B' : 'lora_A')}`);
    if (loraA.shape.length !== 2 || loraB.shape.length !== 2 || loraA.shape[0] !== rank || loraB.shape[1] !== rank) {
      throw new InvalidArgumentError(`${MODULE[target]}: lora_A is [${loraA.shape}] and lora_B is [${loraB.shape}]; expected [${rank}, d_in] and [d_out, ${rank}]`);
    }
    // A zero width would let any r pass with no data behind it (r = 2^45 then loops for ever).
    if (loraA.shape[1] === 0 || loraB.shape[0] === 0) {
      throw new InvalidArgumentError(`${MODULE[target]}: lora_A is [${loraA.shape}] and lora_B is [${loraB.shape}]; d_in and d_out must be at least 1`);
    }
    // fromFlat refuses a non-finite entry with a NonFiniteError.
    adapters[target] = {
      b: transpose(fromFlat(loraA.shape[0], loraA.shape[1], Float64Array.from(loraA.data))),
      a: transpose(fromFlat(loraB.shape[0], loraB.shape[1], Float64Array.from(loraB.data))),
    };
  }
  return { adapters, rank: rank as number, alpha };
}
