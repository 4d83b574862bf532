import { InvalidArgumentError, ShapeError } from '@almora/tensor';

/**
 * A safetensors file that breaks the format (header length, header JSON, dtype, shape,
 * data_offsets, `__metadata__`); the message says which rule and where.
 */
export class SafetensorsError extends InvalidArgumentError {}

/**
 * An adapter or model folder that PEFT would read differently from what it says, or not at all: a
 * bad `adapter_config.json` field, a tensor that belongs to no targeted module, a lora_A without
 * its lora_B, a feature this reader does not implement (DoRA, biases, modules_to_save), a file
 * that cannot be read. The message names the file and the field or tensor.
 */
export class PeftError extends InvalidArgumentError {}

/**
 * Adapter tensors whose shapes do not fit each other, r, or the base model: lora_A must be r×in
 * and lora_B out×r, with in and out those of the adapted layer.
 */
export class PeftShapeError extends ShapeError {}
