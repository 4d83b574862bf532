import { QWEN3_TINY, qwen3Config } from '@almora/model';

/** QWEN3_TINY's layout (grouped query heads, q_norm/k_norm, SwiGLU, tied embeddings, byte vocab), narrower and with 32 positions: each step takes milliseconds. */
export const SMALL_SHAPE = qwen3Config({
  ...QWEN3_TINY,
  hidden_size: 32,
  intermediate_size: 64,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 16,
  max_position_embeddings: 32,
});
