import { InvalidArgumentError, type Matrix, sliceCols, sliceRows, zeros } from '@almora/tensor';
import type { Span } from './batch.js';

/**
 * LongLoRA's shifted sparse attention, S²-Attn (Chen et al., "LongLoRA: Efficient Fine-tuning of
 * Long-Context Large Language Models", ICLR 2024), a training-time option: within each sequence the
 * positions are split into groups of G = `groupSize` consecutive tokens; query heads 0 … H/2 − 1
 * attend causally only within their group [jG, (j+1)G), heads H/2 … H − 1 within the groups
 * shifted by G/2: [0, G/2), [G/2, 3G/2), [3G/2, 5G/2), … (the last group of either half cut at the
 * sequence's end). The halves are over query heads after repeat_kv, so a key/value head may serve
 * query heads of both halves. Evaluate with full attention (the option absent), as LongLoRA does.
 *
 * Unlike LongLoRA's implementation, which rolls the second half's tokens by G/2 so that its last
 * G/2 tokens share a group with its first G/2, the shifted groups here do not wrap around: under
 * the causal mask the rolled group would let early tokens see late ones (a leak of the future).
 * With G ≥ 2·L every group holds the whole sequence and it is full causal attention.
 */
export interface ShiftedSparseAttention {
  /** G: an even integer ≥ 2, the tokens per group. */
  groupSize: number;
}

/**
 * One of the attention core's sequences: a group of consecutive positions of one sequence of the
 * batch and the query heads that attend within it. Without shifted sparse attention there is one
 * block per sequence, with all its positions and heads.
 */
export interface AttentionBlock {
  /** Index of the sequence in the batch. */
  sequence: number;
  /** First position of the group in its sequence. */
  start: number;
  /** Positions in the group. */
  length: number;
  /** The first query head of the block; the core's head h of the block is query head firstHead + h. */
  firstHead: number;
  /** Query heads in the block (H, or H/2 with shifted sparse attention). */
  heads: number;
}

/** A block and its first row in the batch's concatenated rows. */
export interface CoreBlock extends AttentionBlock {
  /** Row of the block's first position in the batch. */
  row: number;
}

/** The checked option: undefined when absent; a typed error for a G that is not an even integer ≥ 2, or an odd number of heads. */
export function checkShiftedSparse(option: ShiftedSparseAttention | undefined, heads: number): ShiftedSparseAttention | undefined {
  if (option === undefined) return undefined;
  if (typeof option !== 'object' || option === null) throw new InvalidArgumentError('shiftedSparseAttention must be { groupSize }');
  const { groupSize: g } = option;
  if (typeof g !== 'number' || !Number.isInteger(g) || g < 2 || g % 2 !== 0)
    throw new InvalidArgumentError(`shiftedSparseAttention.groupSize must be an even integer ≥ 2 (half of the heads shift by G/2), got ${String(g)}`);
  if (heads % 2 !== 0)
    throw new InvalidArgumentError(`shiftedSparseAttention splits the query heads in two halves: num_attention_heads must be even, got ${heads}`);
  return { groupSize: g };
}

/**
 * The attention core's sequences, sequence by sequence: each whole sequence with every head, or,
 * with shifted sparse attention, the groups [jG, (j+1)G) with heads 0 … H/2 − 1 and then the
 * shifted groups [0, G/2), [G/2, 3G/2), … with heads H/2 … H − 1.
 */
export function attentionBlocks(spans: readonly Span[], heads: number, s2: ShiftedSparseAttention | undefined): CoreBlock[] {
  const blocks: CoreBlock[] = [];
  spans.forEach((span, sequence) => {
    if (s2 === undefined) {
      blocks.push({ sequence, start: 0, length: span.length, firstHead: 0, heads, row: span.start });
      return;
    }
    const g = s2.groupSize;
    const half = heads / 2;
    const push = (start: number, end: number, firstHead: number) =>
      blocks.push({ sequence, start, length: Math.min(end, span.length) - start, firstHead, heads: half, row: span.start + start });
    for (let start = 0; start < span.length; start += g) push(start, start + g, 0);
    push(0, g / 2, half);
    for (let start = g / 2; start < span.length; start += g) push(start, start + g, half);
  });
  return blocks;
}

/** Each block of m (T × H·head_dim): its rows and its heads' columns, as views. */
export function splitBlocks(m: Matrix, blocks: readonly CoreBlock[], headDim: number): Matrix[] {
  return blocks.map((b) => {
    const rows = sliceRows(m, b.row, b.row + b.length);
    return b.heads * headDim === m.cols ? rows : sliceCols(rows, b.firstHead * headDim, (b.firstHead + b.heads) * headDim);
  });
}

/** The inverse of {@link splitBlocks}: every block's part put back in its rows and columns of one T × cols matrix. */
export function joinBlocks(parts: readonly Matrix[], blocks: readonly CoreBlock[], rows: number, cols: number, headDim: number): Matrix {
  const out = zeros(rows, cols, { dtype: parts[0].dtype });
  parts.forEach((part, n) => {
    const { row, firstHead } = blocks[n];
    for (let i = 0; i < part.rows; i++)
      out.data.set(part.data.subarray(part.offset + i * part.stride, part.offset + i * part.stride + part.cols), (row + i) * cols + firstHead * headDim);
  });
  return out;
}
