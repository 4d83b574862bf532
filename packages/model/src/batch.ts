import { InvalidArgumentError, type Matrix, ShapeError, sliceRows } from '@almora/tensor';
import type { Qwen3Config } from './config.js';
import { IGNORE_INDEX } from './cross-entropy.js';

/** One sequence's rows in the batch's concatenated T rows. */
export interface Span {
  /** First row. */
  start: number;
  /** Number of tokens. */
  length: number;
}

/**
 * A batch of token sequences laid out as one T×· matrix per activation (every token-wise map runs
 * once over all T rows; only attention and positions are per sequence).
 */
export interface TokenBatch {
  /** Whether a single sequence (not an array of them) was given. */
  single: boolean;
  /** Every token id, sequence after sequence (T). */
  ids: number[];
  /** Every token's position in its own sequence (T). */
  positions: number[];
  /** Every row's next-token target, or {@link IGNORE_INDEX} (T). */
  targets: number[];
  /** Where each sequence's rows are. */
  spans: Span[];
}

function asSequences(value: readonly number[] | readonly (readonly number[])[], name: string): { list: (readonly number[])[]; single: boolean } {
  if (!Array.isArray(value) || value.length === 0) throw new InvalidArgumentError(`${name} must be a non-empty array of token ids, or an array of such arrays`);
  if (value.every((v) => typeof v === 'number')) return { list: [value as readonly number[]], single: true };
  if (value.every((v) => Array.isArray(v))) return { list: value as (readonly number[])[], single: false };
  throw new InvalidArgumentError(`${name} mixes numbers and arrays: give one sequence of ids, or an array of sequences`);
}

/**
 * Checks the ids (and labels, Hugging Face's: the ids by default, {@link IGNORE_INDEX} to skip a
 * position; shifted inside, so label t + 1 is the target of position t) and lays the batch out.
 */
export function tokenBatch(
  config: Qwen3Config,
  inputIds: readonly number[] | readonly (readonly number[])[],
  labels?: readonly number[] | readonly (readonly number[])[],
): TokenBatch {
  const { list, single } = asSequences(inputIds, 'input ids');
  const labelList = labels === undefined ? list : asSequences(labels, 'labels').list;
  if (labelList.length !== list.length) throw new ShapeError(`labels has ${labelList.length} sequences but the input ${list.length}`);
  const batch: TokenBatch = { single, ids: [], positions: [], targets: [], spans: [] };
  list.forEach((seq, n) => {
    const where = single ? '' : ` of sequence ${n}`;
    if (seq.length === 0) throw new ShapeError(`sequence ${n} is empty`);
    if (seq.length > config.max_position_embeddings)
      throw new ShapeError(`sequence${where} has ${seq.length} tokens, more than max_position_embeddings = ${config.max_position_embeddings}`);
    const lab = labelList[n];
    if (lab.length !== seq.length) throw new ShapeError(`labels${where} has ${lab.length} entries but the input ${seq.length}`);
    seq.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= config.vocab_size)
        throw new InvalidArgumentError(`token ${i}${where} is ${id}, not an id in [0, ${config.vocab_size})`);
      const label = lab[i];
      if (label !== IGNORE_INDEX && (!Number.isInteger(label) || label < 0 || label >= config.vocab_size))
        throw new InvalidArgumentError(`label ${i}${where} is ${label}, neither an id in [0, ${config.vocab_size}) nor ${IGNORE_INDEX}`);
    });
    batch.spans.push({ start: batch.ids.length, length: seq.length });
    seq.forEach((id, i) => {
      batch.ids.push(id);
      batch.positions.push(i);
      batch.targets.push(i + 1 < seq.length ? lab[i + 1] : IGNORE_INDEX);
    });
  });
  if (batch.targets.every((t) => t === IGNORE_INDEX))
    throw new InvalidArgumentError('no position has a next-token target: the loss needs a sequence of at least 2 tokens whose shifted labels are not all -100');
  return batch;
}

/** Each sequence's rows of m, as views. */
export function splitRows(m: Matrix, spans: readonly Span[]): Matrix[] {
  return spans.map((s) => sliceRows(m, s.start, s.start + s.length));
}
