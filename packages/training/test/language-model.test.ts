import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initQwen3Adapters, qwen3Config, type Qwen3Model } from '@almora/model';
import { add, frobeniusNorm, InvalidArgumentError, matmul, randomNormal, Rng, scale } from '@almora/tensor';
import { svd } from '@almora/lora-methods';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bitsPerChar,
  CheckpointError,
  checkLanguageModelConfig,
  encodeBytes,
  evaluationWindows,
  freshQwen3,
  latestCheckpoint,
  listCheckpoints,
  trainLanguageModel,
  trainableParameterCount,
  methodFor,
  savePeftAdapters,
  loadPeftAdapters,
  TrainingDivergedError,
  type LanguageModelConfig,
  type LanguageModelStep,
  type TextSplit,
} from '../src/index.js';
import { SMALL_SHAPE } from './shapes.js';

const SHAPE = SMALL_SHAPE;

/** A learnable text: one phrase over and over (its held-out half is the same phrase). */
const PHRASE = encodeBytes('the cat sat on the mat. '.repeat(40));
const DATA: TextSplit = { train: PHRASE.subarray(0, 600), validation: PHRASE.subarray(600) };

const BASE_CONFIG: LanguageModelConfig = {
  mode: 'pretrain',
  contextLength: 16,
  batchSize: 2,
  steps: 6,
  learningRate: 1e-2,
  warmupSteps: 1,
  decay: 'cosine',
  clipNorm: 1,
  seed: 3,
  method: 'exact',
  epsilon: 1e-3,
  qkNormCap: 0,
  shiftedSparseGroup: 0,
  lora: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] },
  evalEvery: 3,
  evalWindows: 2,
  checkpointEvery: 3,
  divergenceFactor: 10,
  loraMethod: 'lora',
  stageSteps: 0,
  rankAllocation: 'none',
};
const FINETUNE: LanguageModelConfig = { ...BASE_CONFIG, mode: 'finetune', learningRate: 3e-2 };

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'almora-lm-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const snapshot = (model: Qwen3Model) => Object.fromEntries(Object.entries(model.weights).map(([key, m]) => [key, m.toFlat()]));
/** A step's record without its wall time, the one thing a rerun may change. */
const timeless = ({ seconds: _seconds, ...rest }: LanguageModelStep & { initialValidation?: number }) => rest;
const metricsOf = async (dir: string) =>
  (await readFile(path.join(dir, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => timeless(JSON.parse(line) as LanguageModelStep));

describe('trainLanguageModel', () => {
  it('pretraining on a repeated phrase brings held-out bits per character well down', async () => {
    const run = await trainLanguageModel(
      freshQwen3(SHAPE, 1),
      DATA,
      { ...BASE_CONFIG, steps: 40, learningRate: 2e-2, evalEvery: 0, checkpointEvery: 0 },
      await tempDir(),
    );
    // A fresh model guesses near-uniformly over 256 bytes: about 8 bits per character.
    expect(run.initialValidation).toBeGreaterThan(7);
    expect(run.finalValidation).toBeLessThan(run.initialValidation - 3);
    expect(run.records).toHaveLength(40);
    expect(run.records.every((r) => r.layers.length === SHAPE.num_hidden_layers && r.layers.every((l) => l.exactHeads > 0 && l.fastHeads === 0))).toBe(true);
  });

  it('a fine-tune never changes the base weights and starts at the base (lora_B = 0)', async () => {
    const base = freshQwen3(SHAPE, 2);
    const before = snapshot(base);
    const windows = evaluationWindows(DATA.validation, FINETUNE.contextLength, FINETUNE.evalWindows);
    const baseBits = bitsPerChar(base, windows);
    // Fresh adapters (lora_A random, lora_B = 0) leave the model exactly the base.
    const adapted = { ...base, lora: initQwen3Adapters(SHAPE, FINETUNE.lora, new Rng(9)) };
    expect(bitsPerChar(adapted, windows)).toBe(baseBits);
    const run = await trainLanguageModel(base, DATA, FINETUNE, await tempDir());
    expect(run.initialValidation).toBe(baseBits);
    expect(snapshot(base)).toEqual(before);
    expect(run.model.weights).toBe(base.weights);
    expect(Object.keys(run.model.lora!.adapters).sort()).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    // The adapters did learn: lora_B moved off zero and the held-out loss moved with it.
    expect(Object.values(run.model.lora!.adapters).some((a) => a.lora_B.toFlat().some((x) => x !== 0))).toBe(true);
    expect(run.finalValidation).not.toBe(run.initialValidation);
  });

  for (const config of [BASE_CONFIG, FINETUNE]) {
    it(`a ${config.mode} run stopped after step 3 and resumed ends bit for bit like one run straight through`, async () => {
      const base = freshQwen3(SHAPE, 4);
      const straightDir = await tempDir();
      const straight = await trainLanguageModel(base, DATA, config, straightDir);
      const resumedDir = await tempDir();
      // Stopped by a crash during the fourth step, after its metrics line: the resume must drop that line.
      const crash = trainLanguageModel(base, DATA, config, resumedDir, {
        onStep: (r) => {
          if (r.step === 3) throw new Error('simulated crash');
        },
      });
      await expect(crash).rejects.toThrow('simulated crash');
      expect(existsSync(path.join(resumedDir, 'run.lock'))).toBe(false);
      const resumed = await trainLanguageModel(base, DATA, config, resumedDir, { resume: true });
      expect(resumed.resumedFrom).toBe(3);
      expect(resumed.configHash).toBe(straight.configHash);
      expect(resumed.records.map(timeless)).toEqual(straight.records.map(timeless));
      expect(resumed.initialValidation).toBe(straight.initialValidation);
      expect(resumed.finalValidation).toBe(straight.finalValidation);
      expect(await metricsOf(resumedDir)).toEqual(await metricsOf(straightDir));
      const [a, b] = await Promise.all(
        [straightDir, resumedDir].map(async (dir) => (await latestCheckpoint(path.join(dir, 'checkpoints'), straight.configHash))!.state),
      );
      expect(b.step).toBe(6);
      expect(b.params).toEqual(a.params);
      expect(b.optimizer).toEqual(a.optimizer);
      expect(b.rngState).toEqual(a.rngState);
    });
  }

  it('a resume drops a torn last metrics line and says so; a bad line before the last is refused', async () => {
    const base = freshQwen3(SHAPE, 8);
    const dir = await tempDir();
    const config = { ...BASE_CONFIG, steps: 3, evalEvery: 0 };
    const first = await trainLanguageModel(base, DATA, config, dir);
    const file = path.join(dir, 'metrics.jsonl');
    const whole = await readFile(file, 'utf8');
    await writeFile(file, `${whole}{"step": 3, "bitsPer`);
    const resumed = await trainLanguageModel(base, DATA, config, dir, { resume: true });
    expect(resumed.notes.join('\n')).toMatch(/dropped the torn last line of .*metrics\.jsonl/);
    expect(resumed.records.map(timeless)).toEqual(first.records.map(timeless));
    expect(await readFile(file, 'utf8')).toBe(whole);
    await writeFile(file, `not json\n${whole}`);
    await expect(trainLanguageModel(base, DATA, config, dir, { resume: true })).rejects.toThrow(
      /line 1 of .*metrics\.jsonl is not JSON and is not the last line/,
    );
  });

  it('refuses to resume with another config, touching nothing', async () => {
    const base = freshQwen3(SHAPE, 5);
    const dir = await tempDir();
    const first = await trainLanguageModel(base, DATA, { ...BASE_CONFIG, steps: 2, evalEvery: 0 }, dir);
    const files = await listCheckpoints(path.join(dir, 'checkpoints'), first.configHash);
    const other = trainLanguageModel(base, DATA, { ...BASE_CONFIG, steps: 2, evalEvery: 0, learningRate: 5e-3 }, dir, { resume: true });
    await expect(other).rejects.toThrow(CheckpointError);
    await expect(other).rejects.toThrow(new RegExp(`no checkpoint of this config .*only of other configs \\(${first.configHash}\\)`));
    expect(await listCheckpoints(path.join(dir, 'checkpoints'), first.configHash)).toEqual(files);
    // Another base model under the same config is another run, too.
    await expect(trainLanguageModel(freshQwen3(SHAPE, 6), DATA, { ...BASE_CONFIG, steps: 2, evalEvery: 0 }, dir, { resume: true })).rejects.toThrow(
      CheckpointError,
    );
  });

  it('stops with TrainingDivergedError when the loss goes non-finite, the last checkpoint intact', async () => {
    const dir = await tempDir();
    const config: LanguageModelConfig = {
      ...BASE_CONFIG,
      steps: 8,
      learningRate: 1e300,
      warmupSteps: 0,
      clipNorm: 0,
      decay: 'none',
      checkpointEvery: 1,
      evalEvery: 0,
    };
    const error = await trainLanguageModel(freshQwen3(SHAPE, 7), DATA, config, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainingDivergedError);
    const message = (error as Error).message;
    expect(message).toMatch(/^training diverged at step \d+: /);
    const hash = /step-\d+-([0-9a-f]{16})\.ckpt/.exec(message)?.[1];
    expect(hash).toBeDefined();
    const good = await latestCheckpoint(path.join(dir, 'checkpoints'), hash!);
    expect(message).toContain(`The last good checkpoint, ${good!.file}, is intact.`);
    expect(Object.values(good!.state.params).every((p) => p.data.every(Number.isFinite))).toBe(true);
    expect(existsSync(path.join(dir, 'run.lock'))).toBe(false);
  });
});

describe('evaluationWindows', () => {
  const text = Uint8Array.from({ length: 100 }, (_, i) => i);

  it('spreads the windows evenly over the text', () => {
    const windows = evaluationWindows(text, 10, 3);
    expect(windows.map((w) => w[0])).toEqual([0, 30, 60]);
    expect(windows.every((w) => w.length === 10)).toBe(true);
    expect(evaluationWindows(text, 10, 2).map((w) => w[0])).toEqual([0, 50]);
  });

  it('takes every whole window when asked for more than the text holds', () => {
    expect(evaluationWindows(text, 30, 8).map((w) => w[0])).toEqual([0, 30, 60]);
  });

  it('refuses a text shorter than one window', () => {
    expect(() => evaluationWindows(text.subarray(0, 9), 10, 1)).toThrow(InvalidArgumentError);
    expect(() => evaluationWindows(text.subarray(0, 9), 10, 1)).toThrow(/9 bytes\) is shorter than one window of 10/);
  });
});

describe('checkLanguageModelConfig', () => {
  const refusals: [string, Partial<LanguageModelConfig>, RegExp][] = [
    ['a context longer than the positions', { contextLength: 33 }, /contextLength 33 exceeds the model's max_position_embeddings \(32\)/],
    ['a fractional step count', { steps: 2.5 }, /steps must be an integer ≥ 1.*got 2.5/],
    ['zero steps', { steps: 0 }, /steps must be an integer ≥ 1/],
    ['a seed past 2^53', { seed: 2 ** 60 }, /seed must be an integer ≥ 0 \(and ≤ 2\^53 − 1\), got 1152921504606847000/],
    ['a batch no process can hold', { batchSize: 2 ** 40 }, /batchSize × contextLength = 17592186044416 tokens a step is more than one process can hold/],
    ['a context of one token', { contextLength: 1 }, /contextLength must be an integer ≥ 2/],
    ['an empty batch', { batchSize: 0 }, /batchSize must be an integer ≥ 1/],
    ['a NaN learning rate', { learningRate: Number.NaN }, /learningRate must be a finite number ≥ 0, got NaN/],
    ['a negative clip', { clipNorm: -1 }, /clipNorm must be a finite number ≥ 0/],
    ['no evaluation windows', { evalWindows: 0 }, /evalWindows must be an integer ≥ 1/],
    ['a zero epsilon', { epsilon: 0 }, /epsilon must be a finite number > 0, got 0/],
    ['an odd shifted sparse group', { shiftedSparseGroup: 3 }, /shiftedSparseGroup must be 0 \(full attention\) or an even integer ≥ 2 .*got 3/],
    ['a model with fewer tokens than bytes', {}, /vocab_size is 128; the text is one token per byte, so it must be 256/],
    ['a model with more tokens than bytes', {}, /vocab_size is 300; the text is one token per byte, so it must be 256/],
    ['an unknown method', { method: 'slow' as LanguageModelConfig['method'] }, /method must be 'exact', 'fast' or 'auto', got slow/],
    ['an unknown decay', { decay: 'step' as LanguageModelConfig['decay'] }, /decay must be 'cosine', 'linear' or 'none', got step/],
    ['an unknown mode', { mode: 'distil' as LanguageModelConfig['mode'] }, /mode must be 'pretrain' or 'finetune'/],
    ['a fine-tune at rank 0', { mode: 'finetune', lora: { r: 0, lora_alpha: 4, target_modules: ['q_proj'] } }, /lora r must be an integer ≥ 1.*got 0/],
    // SHAPE's k_proj and v_proj are 16×32: a rank above 16 adds nothing (and a huge one would not fit in memory).
    [
      'a fine-tune at a rank past the adapted weights',
      { mode: 'finetune', lora: { r: 17, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] } },
      /lora r = 17 exceeds 16, the smallest side of the adapted q_proj, v_proj weights/,
    ],
    ['a fine-tune at rank 1e8', { mode: 'finetune', lora: { r: 1e8, lora_alpha: 4, target_modules: ['q_proj'] } }, /lora r = 100000000 exceeds 32/],
    [
      'a fine-tune at rank 1e300',
      { mode: 'finetune', lora: { r: 1e300, lora_alpha: 4, target_modules: ['q_proj'] } },
      /lora r must be an integer ≥ 1 \(and ≤ 2\^53 − 1\), got 1e\+300/,
    ],
    [
      'a fine-tune of lm_head',
      { mode: 'finetune', lora: { r: 2, lora_alpha: 4, target_modules: ['lm_head' as 'q_proj'] } },
      /target_modules must be distinct modules of q_proj/,
    ],
    [
      'a fine-tune naming q_proj twice',
      { mode: 'finetune', lora: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'q_proj'] } },
      /target_modules must be distinct/,
    ],
  ];
  for (const [what, change, message] of refusals) {
    it(`refuses ${what}`, () => {
      const model = what.includes('fewer tokens')
        ? qwen3Config({ ...SHAPE, vocab_size: 128 })
        : what.includes('more tokens')
          ? qwen3Config({ ...SHAPE, vocab_size: 300 })
          : SHAPE;
      expect(() => checkLanguageModelConfig({ ...BASE_CONFIG, ...change }, model)).toThrow(InvalidArgumentError);
      expect(() => checkLanguageModelConfig({ ...BASE_CONFIG, ...change }, model)).toThrow(message);
    });
  }

  it('accepts the test recipe, and leaves the positions unchecked without a model', () => {
    expect(() => checkLanguageModelConfig(BASE_CONFIG, SHAPE)).not.toThrow();
    expect(() => checkLanguageModelConfig({ ...BASE_CONFIG, contextLength: 4096 })).not.toThrow();
    // A pretraining run ignores the adapters' settings.
    expect(() => checkLanguageModelConfig({ ...BASE_CONFIG, lora: { r: 0, lora_alpha: 0, target_modules: [] } }, SHAPE)).not.toThrow();
  });

  it('trainLanguageModel refuses a bad config or a text too short before writing anything', async () => {
    const dir = path.join(await tempDir(), 'run');
    await expect(trainLanguageModel(freshQwen3(SHAPE, 1), DATA, { ...BASE_CONFIG, steps: -3 }, dir)).rejects.toThrow(/steps must be an integer ≥ 1.*got -3/);
    await expect(
      trainLanguageModel(freshQwen3(SHAPE, 1), { train: DATA.train.subarray(0, 16), validation: DATA.validation }, BASE_CONFIG, dir),
    ).rejects.toThrow(/training text \(16 bytes\) must be longer than contextLength \(16\)/);
    await expect(
      trainLanguageModel(freshQwen3(SHAPE, 1), { train: DATA.train, validation: DATA.validation.subarray(0, 15) }, BASE_CONFIG, dir),
    ).rejects.toThrow(/validation text \(15 bytes\) is shorter than one window of 16/);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('trainLanguageModel with a LoRA method (@almora/lora-methods)', () => {
  const METHODS = ['lora', 'lora-one', 'lora-sb', 'sbora', 'cora', 'lora-pro', 'rac-lora', 'xgblora'] as const;

  // Each method on one of the attention paths in turn: a method only sees the adapters' gradients, whichever path made them.
  for (const [n, loraMethod] of METHODS.entries()) {
    const method = (['auto', 'fast', 'exact'] as const)[n % 3];
    it(`${loraMethod} on '${method}': trains ${loraMethod === 'lora' ? 'both factors' : 'its parameters'}, leaves the base alone, and its exported adapter is the model it evaluated`, async () => {
      const base = freshQwen3(SHAPE, 4);
      const before = snapshot(base);
      const config: LanguageModelConfig = {
        ...FINETUNE,
        loraMethod,
        method,
        // The norm control keeps Γ small enough that a forced fast path needs a low degree.
        qkNormCap: method === 'fast' ? 0.25 : 0,
        stageSteps: loraMethod === 'rac-lora' || loraMethod === 'xgblora' ? 2 : 0,
      };
      const run = await trainLanguageModel(base, DATA, config, await tempDir());
      expect(snapshot(base)).toEqual(before);
      expect(run.trainableParameters).toBe(trainableParameterCount(SHAPE, config.lora, loraMethod));
      expect(run.records).toHaveLength(config.steps);
      expect(Number.isFinite(run.finalValidation)).toBe(true);
      expect(run.finalValidation).not.toBe(run.initialValidation);
      // The returned model is the base with one adapter (a chain's 3 stages side by side, rank 3·r): it scores what the run measured.
      expect(run.model.weights).toBe(base.weights);
      expect(run.model.lora!.r).toBe(config.stageSteps > 0 ? 3 * config.lora.r : config.lora.r);
      expect(
        Math.abs(bitsPerChar(run.model, evaluationWindows(DATA.validation, config.contextLength, config.evalWindows), config.qkNormCap) - run.finalValidation),
      ).toBeLessThan(1e-9);
      const paths = new Set(run.records.flatMap((r) => r.layers.flatMap((l) => l.heads.map((h) => h.chosen))));
      if (method !== 'auto') expect([...paths]).toEqual([method]);
    });
  }

  it('counts what each method trains: half of plain LoRA for SBoRA and CoRA on a square module, r² for LoRA-SB', () => {
    const square = { r: 2, lora_alpha: 4, target_modules: ['q_proj' as const] };
    // q_proj of SHAPE is 32×32 (2 heads of 16 from width 32), in both layers.
    const plain = trainableParameterCount(SHAPE, square, 'lora');
    expect(plain).toBe(2 * 2 * (32 + 32));
    expect(trainableParameterCount(SHAPE, square, 'sbora')).toBe(plain / 2);
    expect(trainableParameterCount(SHAPE, square, 'cora')).toBe(plain / 2);
    expect(trainableParameterCount(SHAPE, square, 'lora-sb')).toBe(2 * 2 * 2);
  });

  for (const loraMethod of ['rac-lora', 'lora-sb'] as const) {
    it(`${loraMethod}: a run stopped after step 3 and resumed ends bit for bit like one run straight through`, async () => {
      const base = freshQwen3(SHAPE, 4);
      const config: LanguageModelConfig = { ...FINETUNE, loraMethod, stageSteps: loraMethod === 'rac-lora' ? 2 : 0 };
      const straight = await trainLanguageModel(base, DATA, config, await tempDir());
      const resumedDir = await tempDir();
      const crash = trainLanguageModel(base, DATA, config, resumedDir, {
        onStep: (r) => {
          if (r.step === 3) throw new Error('simulated crash');
        },
      });
      await expect(crash).rejects.toThrow('simulated crash');
      const resumed = await trainLanguageModel(base, DATA, config, resumedDir, { resume: true });
      expect(resumed.resumedFrom).toBe(3);
      expect(resumed.records.map(timeless)).toEqual(straight.records.map(timeless));
      expect(resumed.finalValidation).toBe(straight.finalValidation);
      for (const [path, adapter] of Object.entries(straight.model.lora!.adapters)) {
        expect(resumed.model.lora!.adapters[path].lora_A.toFlat()).toEqual(adapter.lora_A.toFlat());
        expect(resumed.model.lora!.adapters[path].lora_B.toFlat()).toEqual(adapter.lora_B.toFlat());
      }
    });
  }

  it('a chain extended past the step its last stage ended on merges that stage, as a run straight through does', async () => {
    const base = freshQwen3(SHAPE, 4);
    // A flat schedule and evaluations every 2 steps, so the 4-step run's steps are the 6-step run's first four.
    const config: LanguageModelConfig = {
      ...FINETUNE,
      loraMethod: 'xgblora',
      stageSteps: 2,
      steps: 4,
      checkpointEvery: 2,
      evalEvery: 2,
      warmupSteps: 0,
      decay: 'none',
    };
    const straight = await trainLanguageModel(base, DATA, { ...config, steps: 6 }, await tempDir());
    const dir = await tempDir();
    await trainLanguageModel(base, DATA, config, dir);
    const extended = await trainLanguageModel(base, DATA, { ...config, steps: 6 }, dir, { resume: true });
    expect(extended.resumedFrom).toBe(4);
    expect(extended.model.lora!.r).toBe(3 * config.lora.r);
    expect(extended.records.map(timeless)).toEqual(straight.records.map(timeless));
  });

  for (const name of ['lora-one', 'lora-sb'] as const) {
    it(`${name} starts at one step of the learning rate on the rank-r part of −∂W, whatever the module's rank`, () => {
      const rng = new Rng(5);
      const weight = randomNormal(6, 5, rng);
      const gradient = randomNormal(6, 5, rng);
      for (const r of [1, 3]) {
        const state = methodFor(name, 0, 0.01, { r, lora_alpha: 4 }).init({ weight, weightGradient: gradient, r, lora_alpha: 4, rng });
        const { lora_A, lora_B } = state.adapter();
        const update = scale(matmul(lora_B, lora_A), state.scaling);
        // The best rank-r approximation of −0.01·∂W, from its singular values: what is left is the tail's energy.
        const residual = frobeniusNorm(add(update, scale(gradient, 0.01)));
        const tail = svd(scale(gradient, 0.01))
          .S.slice(r)
          .reduce((sum, sigma) => sum + sigma * sigma, 0);
        expect(Math.abs(residual - Math.sqrt(tail))).toBeLessThan(1e-12);
      }
    });
  }

  it('refuses a rank_pattern with a chain or with a rank allocation', () => {
    const lora = { ...FINETUNE.lora, rank_pattern: { 'model.layers.0.self_attn.q_proj': 1 } };
    expect(() => checkLanguageModelConfig({ ...FINETUNE, lora, loraMethod: 'rac-lora', stageSteps: 2 })).toThrow(
      /rank_pattern cannot go with the chain rac-lora/,
    );
    expect(() => checkLanguageModelConfig({ ...FINETUNE, lora, rankAllocation: 'sublora' })).toThrow(/rank_pattern cannot go with rankAllocation sublora/);
  });

  it('refuses an unknown method and stage steps on a method that is not a chain, before writing anything', async () => {
    expect(() => checkLanguageModelConfig({ ...FINETUNE, loraMethod: 'dora' as LanguageModelConfig['loraMethod'] })).toThrow(
      /loraMethod must be one of lora, lora-one/,
    );
    expect(() => checkLanguageModelConfig({ ...FINETUNE, loraMethod: 'sbora', stageSteps: 2 })).toThrow(/stageSteps applies to the chain methods/);
    expect(() => checkLanguageModelConfig({ ...FINETUNE, loraMethod: 'rac-lora', stageSteps: -1 })).toThrow(/stageSteps must be an integer ≥ 0/);
  });
});

describe('trainLanguageModel with a rank allocation', () => {
  for (const rankAllocation of ['sr-lora', 'gelora', 'sublora'] as const) {
    it(`${rankAllocation}: spreads plain LoRA's trainable budget over the modules as ranks (PEFT's rank_pattern), trains them, and saves and loads them as PEFT does`, async () => {
      const base = freshQwen3(SHAPE, 4);
      const config: LanguageModelConfig = { ...FINETUNE, rankAllocation, lora: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj', 'up_proj'] } };
      const run = await trainLanguageModel(base, DATA, config, await tempDir());
      const lora = run.model.lora!;
      const paths = Object.keys(lora.adapters);
      const ranks = paths.map((path) => lora.rank_pattern?.[path] ?? lora.r);
      expect(ranks.every((r) => r >= 1)).toBe(true);
      // Within 10% of what r = 2 everywhere trains (the allocators split whole ranks of modules 32 to 96 numbers wide).
      const uniform = trainableParameterCount(SHAPE, config.lora, 'lora');
      expect(Math.abs(run.trainableParameters / uniform - 1)).toBeLessThan(0.1);
      for (const path of paths) expect(lora.adapters[path].lora_A.rows).toBe(lora.rank_pattern?.[path] ?? lora.r);
      expect(run.trainableParameters).toBe(trainableParameterCount(SHAPE, { ...config.lora, rank_pattern: lora.rank_pattern }, 'lora'));
      const dir = await tempDir();
      await savePeftAdapters(dir, lora, 'base');
      const loaded = await loadPeftAdapters(dir, SHAPE);
      const windows = evaluationWindows(DATA.validation, config.contextLength, config.evalWindows);
      expect(Math.abs(bitsPerChar({ ...run.model, lora: loaded }, windows) - run.finalValidation)).toBeLessThan(1e-5);
    });
  }

  it('refuses an unknown allocator, and an allocator with a chain', () => {
    expect(() => checkLanguageModelConfig({ ...FINETUNE, rankAllocation: 'adalora' as LanguageModelConfig['rankAllocation'] })).toThrow(
      /rankAllocation must be one of none, sr-lora/,
    );
    expect(() => checkLanguageModelConfig({ ...FINETUNE, rankAllocation: 'sr-lora', loraMethod: 'xgblora' })).toThrow(/not supported: a chain exports/);
  });
});
