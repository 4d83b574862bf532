import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROWN_BASE_SHAPE, loadPeftAdapters, loadQwen3 } from '@almora/training';

// The built CLI, as a user runs it; the base is a 3-step pretraining run, so nothing here needs the shipped base-model/.
const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli.js');
const almora = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

let root: string;
let pretrained: string;
let pretrainRun: ReturnType<typeof almora>;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'almora-text-cli-'));
  pretrained = path.join(root, 'pretrain');
  pretrainRun = almora(
    'pretrain',
    '--steps',
    '3',
    '--context-length',
    '64',
    '--batch-size',
    '1',
    '--eval-windows',
    '1',
    '--checkpoint-every',
    '0',
    '--run-dir',
    pretrained,
    '--quiet',
  );
}, 60_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const baseDir = () => path.join(pretrained, 'run', 'model');

/** A one-message typed error: exit 1, `almora: …` on stderr, no stack and no engine error. */
function expectTypedError(result: ReturnType<typeof almora>, message: RegExp): void {
  expect(result.stderr).toMatch(/^almora: /);
  expect(result.stderr).toMatch(message);
  expect(result.stderr).not.toMatch(/\n\s+at |unexpected error|TypeError/);
  expect(result.status).toBe(1);
}

describe('almora pretrain', () => {
  it('writes the model in Hugging Face layout, the curve and a README', async () => {
    expect(pretrainRun.stderr).toBe('');
    expect(pretrainRun.status).toBe(0);
    expect(pretrainRun.stdout).toMatch(/pretrain: held-out \d+\.\d+ → \d+\.\d+ bits\/char/);
    const run = path.join(pretrained, 'run');
    for (const file of ['model/config.json', 'model/model.safetensors', 'curve.svg', 'README.md', 'metrics.jsonl'])
      expect(existsSync(path.join(run, file)), file).toBe(true);
    const model = await loadQwen3(baseDir());
    expect(model.config).toEqual(BROWN_BASE_SHAPE);
    // The cap it was trained with travels in config.json, so fine-tuning and generation use it by default.
    expect(model.qkNormCap).toBe(1.5);
    expect((await readFile(path.join(run, 'curve.svg'), 'utf8')).startsWith('<svg')).toBe(true);
    const readme = await readFile(path.join(run, 'README.md'), 'utf8');
    expect(readme).toContain('`almora pretrain --steps 3 --context-length 64');
    expect(readme).toMatch(/3 steps of 1 × 64 bytes/);
    expect(readme).toMatch(/\(1 window of 64 bytes of /);
    expect(existsSync(path.join(pretrained, 'run.lock'))).toBe(false);
  });
});

describe('almora train (the text task)', () => {
  it('fine-tunes with auto and exact side by side: report, samples, paths and PEFT adapters', async () => {
    const dir = path.join(root, 'both');
    const run = almora('train', '--base', baseDir(), '--steps', '2', '--context-length', '128', '--eval-windows', '1', '--run-dir', dir, '--quiet');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^auto: held-out .* bits\/char/m);
    expect(run.stdout).toMatch(/^exact: held-out .* bits\/char/m);
    const report = await readFile(path.join(dir, 'report.md'), 'utf8');
    expect(report).toMatch(/^\| auto \| \d+\.\d{4} \| \d+\.\d{4} \| -?\d+\.\d% \|/m);
    expect(report).toMatch(/^\| exact \| \d+\.\d{4} \| \d+\.\d{4} \| -?\d+\.\d% \|/m);
    for (const label of ['auto', 'exact']) {
      expect(report).toContain(`## Paths of '${label}'`);
      expect(report).toContain(`**After fine-tuning with ${label} gradients:**`);
    }
    // One row per layer in each paths table, each run's steps counted.
    expect(report.match(/^\| [01] \| \d+ \| \d+ \| [\d.]+ → /gm)).toHaveLength(4);
    // Every head of every layer at the last step, for both runs: 2 runs × 2 layers × 4 heads.
    expect(report.match(/^\| [01] \| 0 \| [0-3] \| (exact|fast) \| /gm)).toHaveLength(16);
    expect(report).toMatch(/^\| base \| [\d.]+ \| [\d.]+ \|$/m);
    expect(report).toContain('**Base:**');
    expect(report).toContain('Prompt: `She looked at him');
    expect(report).toMatch(/2 steps of 1 × 128 bytes/);
    for (const file of ['loss.svg', 'gamma.svg', 'auto/metrics.jsonl', 'exact/metrics.jsonl']) expect(existsSync(path.join(dir, file)), file).toBe(true);
    // At L = 128 'auto' runs exact in every head, so the two runs train bit for bit alike: the loss
    // plot draws them as one curve that says so, not one hiding the other.
    const [autoSteps, exactSteps] = await Promise.all(['auto', 'exact'].map(async (label) => readFile(path.join(dir, label, 'metrics.jsonl'), 'utf8')));
    const batchBits = (jsonl: string) =>
      jsonl
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { bitsPerChar: number }).bitsPerChar);
    expect(batchBits(autoSteps)).toEqual(batchBits(exactSteps));
    const loss = await readFile(path.join(dir, 'loss.svg'), 'utf8');
    expect(loss).toContain('auto = exact (identical): train batch, average of 5 steps');
    expect(loss).toContain('auto = exact (identical): held-out');
    expect(loss).not.toContain('>exact: train batch');
    for (const label of ['auto', 'exact']) {
      const adapters = await loadPeftAdapters(path.join(dir, label, 'adapter'), BROWN_BASE_SHAPE);
      expect(adapters.target_modules).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
      expect(Object.keys(adapters.adapters)).toHaveLength(7 * BROWN_BASE_SHAPE.num_hidden_layers);
      const config = JSON.parse(await readFile(path.join(dir, label, 'adapter', 'adapter_config.json'), 'utf8')) as {
        base_model_name_or_path: string;
        task_type: string;
      };
      expect(config).toMatchObject({ base_model_name_or_path: baseDir(), task_type: 'CAUSAL_LM' });
    }
    expect(existsSync(path.join(dir, 'run.lock'))).toBe(false);
  }, 60_000);

  it('--compare-exact false runs only --method', async () => {
    const dir = path.join(root, 'one');
    const args = [
      'train',
      '--base',
      baseDir(),
      '--steps',
      '1',
      '--context-length',
      '64',
      '--eval-windows',
      '1',
      '--method',
      'exact',
      '--target-modules',
      'q_proj,v_proj',
      '--rank',
      '2',
      '--compare-exact',
      'false',
      '--run-dir',
      dir,
      '--quiet',
    ];
    const run = almora(...args);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const report = await readFile(path.join(dir, 'report.md'), 'utf8');
    expect(report).toMatch(/^\| exact \|/m);
    expect(report).not.toMatch(/^\| auto \|/m);
    expect(existsSync(path.join(dir, 'auto'))).toBe(false);
    const adapters = await loadPeftAdapters(path.join(dir, 'exact', 'adapter'), BROWN_BASE_SHAPE);
    expect({ r: adapters.r, target_modules: adapters.target_modules }).toEqual({ r: 2, target_modules: ['q_proj', 'v_proj'] });
    // --resume of the finished run picks up its checkpoint: the same held-out numbers (and median step, read back from metrics.jsonl).
    const again = almora(...args, '--resume');
    expect(again.stderr).toBe('');
    expect(again.stdout).toMatch(/^exact: resumed from step 1$/m);
    const rows = (text: string) =>
      text
        .split('\n')
        .filter((line) => line.startsWith('| exact |'))
        .map((line) => line.split('|').slice(0, 6));
    expect(rows(await readFile(path.join(dir, 'report.md'), 'utf8'))).toEqual(rows(report));
  }, 60_000);

  it('almora generate continues a prompt with the base and with adapters applied; the same seed, the same text', async () => {
    const dir = path.join(root, 'both');
    const withBase = (...extra: string[]) => almora('generate', '--base', baseDir(), '--prompt', 'The jury', '--tokens', '12', '--seed', '5', ...extra);
    const base = withBase();
    expect(base.stderr).toBe('');
    expect(base.status).toBe(0);
    expect(base.stdout.startsWith('The jury')).toBe(true);
    expect(withBase().stdout).toBe(base.stdout);
    const greedy = withBase('--temperature', '0');
    expect(greedy.status).toBe(0);
    expect(Buffer.byteLength(greedy.stdout) - Buffer.byteLength('The jury\n')).toBeGreaterThanOrEqual(12);
    const adapted = withBase('--adapter', path.join(dir, 'exact', 'adapter'));
    expect(adapted.stderr).toBe('');
    expect(adapted.status).toBe(0);
    expect(adapted.stdout.startsWith('The jury')).toBe(true);
    expect(adapted.stdout).not.toBe(base.stdout);
  }, 60_000);

  const refusals: [string, string[], RegExp][] = [
    // node:util's parseArgs takes `--steps -3` for a flag missing its value and says how to write it.
    ['negative steps', ['train', '--steps', '-3'], /--steps must be an integer ≥ 1 .*got -3/],
    ['negative steps (=)', ['train', '--steps=-3'], /--steps must be an integer ≥ 1.*got -3/],
    ['steps that are no number', ['train', '--steps', 'abc'], /--steps must be a number, got "abc"/],
    ['fractional steps (pretrain)', ['pretrain', '--steps', '1.5'], /--steps must be an integer ≥ 1.*got 1\.5/],
    ['an unknown method', ['train', '--method', 'slow'], /--method must be exact, fast or auto, got "slow"/],
    ['an unknown LoRA method', ['train', '--lora-method', 'dora'], /--lora-method must be one of lora, lora-one, .*, got "dora"/],
    [
      'stage steps on a method that is no chain',
      ['train', '--lora-method', 'sbora', '--stage-steps', '5'],
      /--stage-steps applies to the chain methods \(rac-lora, xgblora\), not sbora/,
    ],
    ['an unknown rank allocation', ['train', '--rank-allocation', 'adalora'], /--rank-allocation must be one of none, sr-lora, gelora, sublora, got "adalora"/],
    [
      'a rank allocation with a chain',
      ['train', '--rank-allocation', 'gelora', '--lora-method', 'rac-lora'],
      /--rank-allocation gelora with the chain rac-lora is not supported/,
    ],
    ['an unknown task', ['train', '--task', 'nope'], /--task must be text or teacher, got "nope"/],
    ['an unknown task (=)', ['train', '--task=nope'], /--task must be text or teacher, got "nope"/],
    ['an unknown flag', ['train', '--stepz', '3'], /unknown option --stepz; did you mean --steps\? \(almora train --help lists the options\)/],
    ['an unknown flag (pretrain)', ['pretrain', '--rank', '3'], /unknown option --rank \(almora pretrain --help lists the options\)/],
    ['an odd shifted sparse group', ['train', '--shifted-sparse-group', '3'], /--shifted-sparse-group must be 0 \(full attention\) or an even integer/],
    ['a batch past 2^53', ['train', '--batch-size', '9007199254740993'], /--batch-size must be an integer ≥ 1 \(and ≤ 2\^53 − 1\)/],
    ['rank 0', ['train', '--rank', '0'], /--rank must be an integer ≥ 1.*got 0/],
    ['a module Qwen3 has not', ['train', '--target-modules', 'q_proj,lm_head'], /--target-modules must be distinct modules of/],
    ['a bad --compare-exact', ['train', '--compare-exact', 'maybe'], /--compare-exact must be true or false, got "maybe"/],
    [
      'a context past the positions (pretrain)',
      ['pretrain', '--context-length', '5000'],
      /--context-length 5000 exceeds the model's max_position_embeddings \(4096\)/,
    ],
    ['an unknown command', ['pretrian'], /unknown command "pretrian"/],
  ];
  it('almora --version prints the version and exits 0', async () => {
    const { version } = JSON.parse(await readFile(path.resolve(path.dirname(cli), '../package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const run = almora(flag);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(run.stdout).toBe(`almora ${version}\n`);
    }
  });

  const generateRefusals: [string, string[], RegExp][] = [
    ['no prompt', ['--tokens', '3'], /generate needs --prompt/],
    ['a negative temperature', ['--prompt', 'a', '--temperature=-1'], /--temperature must be a number ≥ 0, got "-1"/],
    ['more tokens than positions', ['--prompt', 'a', '--tokens', '5000'], /--tokens 5000 and a prompt of 1 bytes exceed the model's 4096 positions/],
    [
      'an adapter folder that is not one',
      ['--prompt', 'a', '--adapter', '/nonexistent-adapter'],
      /^almora: cannot open \/nonexistent-adapter\/adapter_config\.json: no such file or directory$/m,
    ],
  ];
  for (const [what, args, message] of generateRefusals) {
    it(`almora generate refuses ${what} with one line and no stack`, () => expectTypedError(almora('generate', '--base', baseDir(), ...args), message));
  }

  for (const [what, args, message] of refusals) {
    it(`refuses ${what} with one line and no stack, before making the run folder`, () => {
      const dir = path.join(root, `refused-${what.replace(/\W+/g, '-')}`);
      expectTypedError(almora(...args, '--run-dir', dir), message);
      expect(existsSync(dir)).toBe(false);
    });
  }

  it('refuses a missing base, a context past its positions and a rank past its weights, naming them', () => {
    const missing = path.join(root, 'no-such-model');
    expectTypedError(
      almora('train', '--base', missing, '--run-dir', path.join(root, 'missing'), '--quiet'),
      new RegExp(`cannot open ${missing}/config\\.json: no such file or directory`),
    );
    expectTypedError(
      almora('train', '--base', baseDir(), '--context-length', '5000', '--run-dir', path.join(root, 'long'), '--quiet'),
      /contextLength 5000 exceeds the model's max_position_embeddings \(4096\)/,
    );
    // --rank 1e8 was a RangeError ('unexpected error') allocating the adapters.
    expectTypedError(
      almora('train', '--base', baseDir(), '--rank', '100000000', '--run-dir', path.join(root, 'rank'), '--quiet'),
      /lora r = 100000000 exceeds 32, the smallest side of the adapted q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj weights/,
    );
  });
});

describe('--help', () => {
  it('pretrain and train print their usage; --task teacher --help the teacher task', () => {
    const pretrain = almora('pretrain', '--help');
    expect(pretrain.status).toBe(0);
    expect(pretrain.stdout).toMatch(/^usage: almora pretrain/);
    expect(pretrain.stdout).toMatch(/--steps <N> +Optimizer steps; .*\s+\(default: 2400\)/);
    const train = almora('train', '--help');
    expect(train.status).toBe(0);
    expect(train.stdout).toMatch(/^usage: almora train \[options\]/);
    expect(train.stdout).toMatch(/--context-length <N> +Tokens \(bytes\) per training sequence L\. \(default: 2048\)/);
    const teacher = almora('train', '--task', 'teacher', '--help');
    expect(teacher.status).toBe(0);
    expect(teacher.stdout).toMatch(/^usage: almora train --task teacher \[options\]/);
    expect(teacher.stdout).toContain('normalize-inputs');
    const commands = almora('--help');
    expect(commands.status).toBe(0);
    expect(commands.stdout).toMatch(/almora train .*\n.*almora train --task teacher .*\n.*almora pretrain /);
  });
});
