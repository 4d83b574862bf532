import type { AlmoraError } from '@almora/tensor';
import { type MatchBudget, ModulePattern } from './pattern.js';

/** PEFT's shorthand for every linear layer but the output layer. */
export const ALL_LINEAR = 'all-linear';

/** The output layer `all-linear` leaves out unless told otherwise (transformers' causal LMs). */
export const DEFAULT_OUTPUT_LAYER = 'lm_head';

/** The last dotted component of a module path: `q_proj` of `model.layers.0.self_attn.q_proj`. */
function lastComponent(module: string): string {
  return module.slice(module.lastIndexOf('.') + 1);
}

/**
 * A compiled `target_modules` or `exclude_modules` value with PEFT's meaning: a list selects a
 * module whose path equals an entry or ends with `.` + the entry; a string is a regex the whole
 * path must match (`re.fullmatch`); `all-linear` selects every linear layer except the output
 * layer (PEFT turns it into the set of last path components of the model's linear layers, less
 * the output layer's name).
 */
export class ModuleSelector {
  private readonly names: Set<string> | undefined;
  private readonly pattern: ModulePattern | undefined;
  private readonly allLinear: boolean;

  constructor(
    spec: readonly string[] | string,
    private readonly fail: (message: string) => AlmoraError,
  ) {
    this.allLinear = spec === ALL_LINEAR;
    if (typeof spec !== 'string') this.names = new Set(spec);
    else if (!this.allLinear) this.pattern = ModulePattern.compile(spec, fail);
  }

  /**
   * Whether `module` is selected. Without the model's linear layers, `all-linear` selects any
   * module whose last component is not the output layer's name.
   */
  matches(module: string, budget: MatchBudget, outputLayer: string = DEFAULT_OUTPUT_LAYER): boolean {
    if (this.allLinear) return lastComponent(module) !== outputLayer;
    if (this.pattern) return this.pattern.fullMatch(module, budget, this.fail);
    // `module == t or module.endswith('.' + t)`: the whole path or any part after a dot, by lookup.
    budget.steps -= module.length;
    if (this.names!.has(module)) return true;
    for (let dot = module.indexOf('.'); dot >= 0; dot = module.indexOf('.', dot + 1)) if (this.names!.has(module.slice(dot + 1))) return true;
    return false;
  }

  /** The modules among `linearModules` that are selected, resolving `all-linear` against them as PEFT does. */
  select(linearModules: readonly string[], budget: MatchBudget, outputLayer: string = DEFAULT_OUTPUT_LAYER): string[] {
    if (!this.allLinear) return linearModules.filter((m) => this.matches(m, budget, outputLayer));
    const names = new Set(linearModules.map(lastComponent));
    names.delete(outputLayer);
    return linearModules.filter((m) => names.has(lastComponent(m)));
  }
}

/**
 * PEFT's lookup of a module's entry in `rank_pattern` or `alpha_pattern`: the first key, in the
 * file's order, such that `re.match(rf"(.*\.)?({key})$", module)` succeeds; undefined if none.
 */
export class PatternTable {
  private readonly entries: [ModulePattern, number][];

  constructor(table: Readonly<Record<string, number>>, fail: (message: string) => AlmoraError) {
    this.entries = Object.keys(table).map((key) => [ModulePattern.compile(`(.*\\.)?(${key})$`, fail), table[key]]);
  }

  /** The value for `module`, or undefined when no key matches. */
  lookup(module: string, budget: MatchBudget, fail: (message: string) => AlmoraError): number | undefined {
    for (const [pattern, value] of this.entries) if (pattern.fullMatch(module, budget, fail)) return value;
    return undefined;
  }
}
