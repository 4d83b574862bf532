import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { encodeBytes, freshQwen3, latestCheckpoint, trainLanguageModel, TrainingDivergedError } from '../src/index.js';
import { SMALL_SHAPE } from './shapes.js';

// A fault injected into the model: once two training passes have run, every evaluation pass (the
// calls without weightGradients) reports a NaN loss, as an overflow in the held-out text would.
const calls = vi.hoisted(() => ({ training: 0 }));
vi.mock('@almora/model', async (importOriginal) => {
  const original = await importOriginal<typeof import('@almora/model')>();
  return {
    ...original,
    qwen3ForCausalLM: ((...args: Parameters<typeof original.qwen3ForCausalLM>) => {
      const result = original.qwen3ForCausalLM(...args);
      if (args[2] && 'weightGradients' in args[2]) calls.training++;
      else if (calls.training >= 2) result.loss = Number.NaN;
      return result;
    }) as typeof original.qwen3ForCausalLM,
  };
});

const SHAPE = SMALL_SHAPE;
const TEXT = encodeBytes('the cat sat on the mat. '.repeat(40));
let dir: string;
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('a non-finite held-out evaluation stops the run as a divergence, not a NaN in the metrics', async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'almora-lm-diverge-'));
  const config = {
    mode: 'pretrain',
    contextLength: 16,
    batchSize: 2,
    steps: 4,
    learningRate: 1e-2,
    warmupSteps: 0,
    decay: 'none',
    clipNorm: 1,
    seed: 1,
    method: 'exact',
    epsilon: 1e-3,
    qkNormCap: 0,
    shiftedSparseGroup: 0,
    lora: { r: 2, lora_alpha: 4, target_modules: ['q_proj'] },
    evalEvery: 1,
    evalWindows: 1,
    checkpointEvery: 1,
    divergenceFactor: 10,
    loraMethod: 'lora',
    stageSteps: 0,
    rankAllocation: 'none',
  } as const;
  const error = await trainLanguageModel(
    freshQwen3(SHAPE, 1),
    { train: TEXT.subarray(0, 600), validation: TEXT.subarray(600) },
    { ...config, lora: { ...config.lora, target_modules: [...config.lora.target_modules] } },
    dir,
  ).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(TrainingDivergedError);
  expect((error as Error).message).toMatch(/^training diverged at step 2: the held-out bits per character are NaN/);
  const lines = (await readFile(path.join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  expect(lines).toHaveLength(1);
  expect((JSON.parse(lines[0]) as { validationBitsPerChar: number }).validationBitsPerChar).toBeGreaterThan(0);
  const hash = /step-0000001-([0-9a-f]{16})\.ckpt/.exec((error as Error).message)![1];
  expect((await latestCheckpoint(path.join(dir, 'checkpoints'), hash))!.state.step).toBe(1);
});
