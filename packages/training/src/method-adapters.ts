import type { LoraWeights } from '@almora/lora';
import {
  LORA_METHODS,
  type LoraMethod,
  type LoraMethodName,
  loraOne,
  loraSb,
  mergeIntoWeight,
  type ModuleMethodState,
  racLora,
  xgbLora,
} from '@almora/lora-methods';
import { qwen3ModulePath, qwen3StateDictShapes, type Qwen3Config, type Qwen3Lora, type Qwen3LoraConfig, type Qwen3Weights } from '@almora/model';
import { copy, fromFlat, InvalidArgumentError, type Matrix, Rng } from '@almora/tensor';

/** An adapter the chain merged into its weights, with the scaling it ran with. */
interface MergedStage {
  adapters: Record<string, LoraWeights>;
  scaling: number;
}

/** An adapted module: its path, its layer and its weight's (out, in). */
export interface AdaptedModule {
  path: string;
  layer: number;
  out: number;
  in: number;
}

/** The adapted modules, layer by layer, in target_modules order (the order adapters are drawn in). */
export function adaptedPaths(config: Qwen3Config, targets: readonly string[]): AdaptedModule[] {
  const shapes = qwen3StateDictShapes(config);
  const list: AdaptedModule[] = [];
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    for (const module of targets) {
      const path = qwen3ModulePath(layer, module as Parameters<typeof qwen3ModulePath>[1]);
      const [out, inner] = shapes[`${path}.weight`];
      list.push({ path, layer, out, in: inner });
    }
  }
  return list;
}

/**
 * The method a run trains with: the registry's, a chain with its stage length set (`stageSteps` >
 * 0), or LoRA-One and LoRA-SB with γ = η·r/lora_alpha for the module's rank r, so that their first
 * adapter, s·γ·[−∂W]_r with s = lora_alpha/r, is one gradient step of the run's learning rate η on
 * the rank-r part of ∂W. (Their package default
 * γ = 1 is a step of size s: on the Brown base it left held-out perplexity 279% and 239% above
 * plain LoRA's after 3 steps at η = 3e-3, in the methods bench's quick run.)
 */
export function methodFor(name: LoraMethodName, stageSteps: number, learningRate: number, lora: Pick<Qwen3LoraConfig, 'r' | 'lora_alpha'>): LoraMethod {
  if (stageSteps > 0 && name === 'rac-lora') return racLora({ stepsPerStage: stageSteps });
  if (stageSteps > 0 && name === 'xgblora') return xgbLora({ stepsPerStage: stageSteps });
  const gamma = (learningRate * lora.r) / lora.lora_alpha;
  if (name === 'lora-one' && gamma > 0) return loraOne({ gamma });
  if (name === 'lora-sb' && gamma > 0) return loraSb({ gamma });
  const method = (LORA_METHODS as Record<string, LoraMethod | undefined>)[name];
  if (!method) throw new InvalidArgumentError(`loraMethod must be one of ${Object.keys(LORA_METHODS).join(', ')}, got ${String(name)}`);
  return method;
}

/**
 * The adapters of a fine-tune under a LoRA method (@almora/lora-methods): one state per adapted
 * module, whose trainable tensors the optimizer updates and whose adapter the model runs with.
 * A chain method (RAC-LoRA, XGBLoRA) merges each stage into the module's weight and starts the
 * next; the merged stages are kept, so the run exports as one adapter and a checkpoint can
 * rebuild the chain.
 */
export class MethodAdapters {
  private states = new Map<string, ModuleMethodState>();
  private readonly merged: MergedStage[] = [];

  /**
   * @param weights The model's weights; a chain replaces the adapted modules' entries with merged
   *   copies (the caller passes a copy of the record, never the base's own).
   * @param initialGradients ∂W at the base of every adapted module by `<path>.weight`, for methods that start from it.
   */
  /** The method (as at the config's r: its name, chain and needs; every module's own is `methodAt` of its rank). */
  readonly method: LoraMethod;

  /**
   * @param methodAt The method for a module of the given rank (LoRA-One's and LoRA-SB's γ depends on it).
   * @param weights The model's weights; a chain replaces the adapted modules' entries with merged
   *   copies (the caller passes a copy of the record, never the base's own).
   * @param initialGradients ∂W at the base of every adapted module by `<path>.weight`, for methods that start from it.
   */
  constructor(
    private readonly methodAt: (rank: number) => LoraMethod,
    private readonly config: Qwen3Config,
    private readonly lora: Qwen3LoraConfig,
    private readonly weights: Qwen3Weights,
    private readonly seed: number,
    private readonly initialGradients: Qwen3Weights | undefined,
  ) {
    this.method = methodAt(lora.r);
    if (this.method.needsInitialGradient && !initialGradients)
      throw new InvalidArgumentError(`${this.method.name} starts from the full-weight gradient at the base; none was given`);
    // A chain merges and exports every stage at one scaling (lora_alpha / r), which a rank per module would break.
    if (this.method.chain && lora.rank_pattern)
      throw new InvalidArgumentError(`${this.method.name} is a chain: it takes one r for every module, not a rank_pattern`);
    this.startStage();
  }

  /** Fresh states for the current stage; every stage draws from its own seeded generator, so a resume redraws the same. */
  private startStage(): void {
    const rng = new Rng(this.seed + 1 + 7919 * this.merged.length);
    this.states = new Map(
      adaptedPaths(this.config, this.lora.target_modules).map(({ path }) => {
        const r = this.lora.rank_pattern?.[path] ?? this.lora.r;
        const state = this.methodAt(r).init({
          weight: this.weights[`${path}.weight`],
          weightGradient: this.merged.length === 0 ? this.initialGradients?.[`${path}.weight`] : undefined,
          r,
          lora_alpha: this.lora.lora_alpha,
          rng,
        });
        return [path, state];
      }),
    );
  }

  /** Stages merged so far. */
  get stage(): number {
    return this.merged.length;
  }

  /**
   * The trainable tensors by name: `<path>.lora_A` and `<path>.lora_B` for plain LoRA (the names
   * its checkpoints always had), `<path>.<i>` for the others.
   */
  parameters(): [string, Matrix][] {
    return [...this.states].flatMap(([path, state]) =>
      state.parameters.map((m, i): [string, Matrix] => [this.method.name === 'lora' ? `${path}.${i === 0 ? 'lora_A' : 'lora_B'}` : `${path}.${i}`, m]),
    );
  }

  /** The adapters the model runs with now. */
  current(): Qwen3Lora {
    const adapters: Record<string, LoraWeights> = {};
    for (const [path, state] of this.states) adapters[path] = state.adapter();
    return {
      r: this.lora.r,
      lora_alpha: this.lora.lora_alpha,
      target_modules: [...this.lora.target_modules],
      ...(this.lora.rank_pattern ? { rank_pattern: { ...this.lora.rank_pattern } } : {}),
      adapters,
    };
  }

  /** The optimizer's directions for {@link parameters}, in their order, from the model's adapter gradients (and ∂W where a method needs it). */
  gradients(adapterGradients: Record<string, LoraWeights>, weightGradients: Qwen3Weights | undefined): Matrix[] {
    return [...this.states].flatMap(([path, state]) => state.gradients(adapterGradients[path], weightGradients?.[`${path}.weight`]));
  }

  /** Whether `done` steps end a stage of a chain (and more steps follow). */
  stageEnds(done: number, steps: number): boolean {
    const chain = this.method.chain;
    return chain !== undefined && done < steps && done % chain.stepsPerStage === 0;
  }

  /** Merges the current stage into the weights and starts the next (a chain's stage boundary). */
  nextStage(): void {
    const adapters: Record<string, LoraWeights> = {};
    for (const [path, state] of this.states) {
      const adapter = state.adapter();
      adapters[path] = { lora_A: copy(adapter.lora_A), lora_B: copy(adapter.lora_B) };
    }
    this.merge(adapters);
  }

  private merge(adapters: Record<string, LoraWeights>): void {
    // Every stage runs at the config's scaling lora_alpha / r.
    const scaling = this.lora.lora_alpha / this.lora.r;
    for (const [path, adapter] of Object.entries(adapters)) this.weights[`${path}.weight`] = mergeIntoWeight(this.weights[`${path}.weight`], adapter, scaling);
    this.merged.push({ adapters, scaling });
    this.startStage();
  }

  /** The merged stages as checkpoint tensors (`stage.<k>.<path>.lora_A`/`lora_B`), to rebuild the chain on resume. */
  mergedTensors(): [string, Matrix][] {
    return this.merged.flatMap(({ adapters }, k) =>
      Object.entries(adapters).flatMap(([path, a]): [string, Matrix][] => [
        [`stage.${k}.${path}.lora_A`, a.lora_A],
        [`stage.${k}.${path}.lora_B`, a.lora_B],
      ]),
    );
  }

  /** Replays `stages` merges from checkpoint tensors: the same merges, in the same order, as the run made. */
  restoreStages(stages: number, tensor: (name: string) => Matrix): void {
    for (let k = 0; k < stages; k++) {
      const adapters: Record<string, LoraWeights> = {};
      for (const path of this.states.keys()) adapters[path] = { lora_A: tensor(`stage.${k}.${path}.lora_A`), lora_B: tensor(`stage.${k}.${path}.lora_B`) };
      this.merge(adapters);
    }
  }

  /**
   * The whole fine-tune as one PEFT adapter on the original base: the current stage and every
   * merged one side by side (rank stages·r, scaling 1: lora_B = [s·B₁ … s·B_k], lora_A = [A₁; …; A_k]),
   * so merging it into the base gives the weights the chain trained. Without a chain: {@link current}.
   */
  exported(): Qwen3Lora {
    if (this.merged.length === 0) return this.current();
    const stages = [...this.merged, { adapters: this.current().adapters, scaling: this.lora.lora_alpha / this.lora.r }];
    const rank = stages.length * this.lora.r;
    const adapters: Record<string, LoraWeights> = {};
    for (const path of this.states.keys()) {
      const parts = stages.map(({ adapters: a, scaling }) => ({ a: a[path].lora_A, b: a[path].lora_B, scaling }));
      const inner = parts[0].a.cols;
      const out = parts[0].b.rows;
      const a = new Float64Array(rank * inner);
      const b = new Float64Array(out * rank);
      parts.forEach(({ a: stageA, b: stageB, scaling }, k) => {
        const r = this.lora.r;
        a.set(stageA.toFlat(), k * r * inner);
        for (let i = 0; i < out; i++) for (let j = 0; j < r; j++) b[i * rank + k * r + j] = scaling * stageB.get(i, j);
      });
      adapters[path] = { lora_A: fromFlat(rank, inner, a), lora_B: fromFlat(out, rank, b) };
    }
    return { r: rank, lora_alpha: rank, target_modules: [...this.lora.target_modules], adapters };
  }
}

/**
 * How many numbers a fine-tune trains under `method` with this LoRA config on a model of this
 * shape (the size of every module's trainable tensors, summed). Methods that start from a
 * gradient are initialised on a stand-in gradient of the right shapes; only the sizes are used.
 */
export function trainableParameterCount(config: Qwen3Config, lora: Qwen3LoraConfig, method: LoraMethodName): number {
  const chosen = methodFor(method, 0, 1, lora);
  const rng = new Rng(0);
  let count = 0;
  for (const { path, out, in: inner } of adaptedPaths(config, lora.target_modules)) {
    // A full-rank stand-in (identity plus noise), so SVD-based inits have r directions to take.
    const standIn = fromFlat(
      out,
      inner,
      Float64Array.from({ length: out * inner }, (_, k) => (Math.floor(k / inner) === k % inner ? 1 : 0) + 1e-3 * rng.next()),
    );
    const state = chosen.init({ weight: standIn, weightGradient: standIn, r: lora.rank_pattern?.[path] ?? lora.r, lora_alpha: lora.lora_alpha, rng });
    count += state.parameters.reduce((sum, m) => sum + m.size, 0);
  }
  return count;
}
