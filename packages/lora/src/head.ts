import type { Matrix } from '@almora/tensor';

/** Loss, output and gradients of one attention head on one sequence: what both paths compute. */
export interface HeadResult {
  /** ½‖O − Y‖²_F for this head's columns. */
  loss: number;
  /** O = f·V (L_q×d_h). */
  output: Matrix;
  /** ∂loss/∂Q (L_q×d_h). */
  dq: Matrix;
  /** ∂loss/∂K (L_k×d_h). */
  dk: Matrix;
  /** ∂loss/∂V (L_k×d_h). */
  dv: Matrix;
}

/** One head's projected inputs. */
export interface HeadInput {
  q: Matrix;
  k: Matrix;
  v: Matrix;
  y: Matrix;
  beta: number;
  causal: boolean;
}
