import { InvalidArgumentError } from '@almora/tensor';
import { racLora, xgbLora } from './chain.js';
import { cora } from './cora.js';
import { lora } from './lora.js';
import { loraOne } from './lora-one.js';
import { loraPro } from './lora-pro.js';
import { loraSb } from './lora-sb.js';
import type { LoraMethod, LoraMethodName } from './method.js';
import { sbora } from './sbora.js';
import { geloraRanks } from './gelora.js';
import { srLoraRanks } from './sr-lora.js';
import { subloraRanks } from './sublora.js';

/**
 * Every method by name, each with its defaults (PEFT's `init_lora_weights` and LoRA variants in
 * one table). For other options call the method's factory (`loraOne({ gamma })`, `sbora({
 * variant: 'FB' })`, …), which returns a method of the same shape.
 */
export const LORA_METHODS: Readonly<Record<LoraMethodName, LoraMethod>> = Object.freeze({
  lora,
  'lora-one': loraOne(),
  'lora-sb': loraSb(),
  sbora: sbora(),
  cora: cora(),
  'lora-pro': loraPro(),
  'rac-lora': racLora(),
  xgblora: xgbLora(),
});

/**
 * The method named `name` in {@link LORA_METHODS}.
 *
 * @throws {InvalidArgumentError} for a name that is not one, listing those that are.
 */
export function loraMethod(name: string): LoraMethod {
  if (!Object.hasOwn(LORA_METHODS, name)) {
    throw new InvalidArgumentError(`unknown LoRA method ${JSON.stringify(name)}; known: ${Object.keys(LORA_METHODS).join(', ')}`);
  }
  return LORA_METHODS[name as LoraMethodName];
}

/** The rank allocators by name, each taking its own evidence and returning PEFT's `rank_pattern`. */
export const RANK_ALLOCATORS = Object.freeze({
  'sr-lora': srLoraRanks,
  gelora: geloraRanks,
  sublora: subloraRanks,
});

/** The names in {@link RANK_ALLOCATORS}. */
export type RankAllocatorName = keyof typeof RANK_ALLOCATORS;

/**
 * The allocator named `name` in {@link RANK_ALLOCATORS}.
 *
 * @throws {InvalidArgumentError} for a name that is not one (from untyped callers), listing those that are.
 */
export function rankAllocator<N extends RankAllocatorName>(name: N): (typeof RANK_ALLOCATORS)[N] {
  if (!Object.hasOwn(RANK_ALLOCATORS, name)) {
    throw new InvalidArgumentError(`unknown rank allocator ${JSON.stringify(name)}; known: ${Object.keys(RANK_ALLOCATORS).join(', ')}`);
  }
  return RANK_ALLOCATORS[name];
}
