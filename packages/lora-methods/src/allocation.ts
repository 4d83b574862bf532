import { InvalidArgumentError } from '@almora/tensor';

/** A rank allocation: PEFT's `rank_pattern` and the per-module score it was apportioned by. */
export interface RankAllocation {
  /** r per module path, every r ≥ 1, summing exactly to the budget (PEFT's `rank_pattern`; paths as keys, as PEFT writes them). */
  rank_pattern: Record<string, number>;
  /** The allocator's score of each module (stable rank, ID difference, predicted loss decrease, …). */
  scores: Record<string, number>;
}

/**
 * Integer ranks r_m ≥ 1, r_m ≤ caps[m], Σ r_m = budget, proportional to `scores` above the floor
 * of 1: every module gets 1, then the rest of the budget by Hamilton's largest-remainder rule on
 * the quotas (budget − n)·score_m / Σ score, a module whose quota would pass its cap held at the
 * cap and the rest re-apportioned; ties go to the module named first. All-zero scores share
 * equally.
 *
 * @throws {InvalidArgumentError} for no modules, a score that is negative or not finite, or a
 * budget that is not an integer in [n, Σ caps].
 */
export function apportion(scores: Readonly<Record<string, number>>, budget: number, caps: Readonly<Record<string, number>>): Record<string, number> {
  const names = Object.keys(scores);
  if (names.length === 0) throw new InvalidArgumentError('rank allocation: no modules');
  for (const name of names) {
    const s = scores[name];
    if (!(Number.isFinite(s) && s >= 0)) throw new InvalidArgumentError(`rank allocation: the score of ${name} must be finite and ≥ 0, got ${s}`);
    const cap = caps[name];
    if (!(Number.isInteger(cap) && cap >= 1)) throw new InvalidArgumentError(`rank allocation: the rank cap of ${name} must be an integer ≥ 1, got ${cap}`);
  }
  const most = names.reduce((sum, name) => sum + caps[name], 0);
  if (!Number.isInteger(budget) || budget < names.length || budget > most) {
    throw new InvalidArgumentError(
      `rank allocation: the budget must be an integer in [${names.length}, ${most}] (one rank per module at least, each at most min(out, in)), got ${budget}`,
    );
  }
  const allZero = names.every((name) => scores[name] === 0);
  const weight = (name: string) => (allZero ? 1 : scores[name]);
  const ranks: Record<string, number> = {};
  let active = names.filter((name) => caps[name] > 1);
  for (const name of names) if (caps[name] === 1) ranks[name] = 1;
  while (true) {
    const left = budget - names.reduce((sum, name) => sum + (active.includes(name) ? 0 : ranks[name]), 0);
    const spare = left - active.length;
    const total = active.reduce((sum, name) => sum + weight(name), 0);
    // Active modules with zero weight when others have some get only their floor.
    const quota = (name: string) => 1 + (total > 0 ? (spare * weight(name)) / total : spare / active.length);
    const over = active.filter((name) => quota(name) > caps[name]);
    if (over.length > 0) {
      for (const name of over) ranks[name] = caps[name];
      active = active.filter((name) => !over.includes(name));
      continue;
    }
    let given = 0;
    for (const name of active) {
      ranks[name] = Math.floor(quota(name));
      given += ranks[name];
    }
    const order = [...active].sort((a, b) => quota(b) - Math.floor(quota(b)) - (quota(a) - Math.floor(quota(a))) || names.indexOf(a) - names.indexOf(b));
    for (let k = 0; k < left - given; k++) ranks[order[k % order.length]] += 1;
    break;
  }
  const out: Record<string, number> = {};
  for (const name of names) out[name] = ranks[name];
  return out;
}
