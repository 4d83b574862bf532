import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli.js');
/** util-linux's `script` gives the command a pseudo-terminal, as a person at a terminal would run it. */
const SCRIPT = '/usr/bin/script';
const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

/** Runs `almora …` in a pseudo-terminal: everything it printed (stdout and stderr, as the terminal shows them) and its exit status. */
function inTerminal(...args: string[]): { output: string; status: number | null } {
  const command = [process.execPath, cli, ...args].map(quote).join(' ');
  const run = spawnSync(SCRIPT, ['-q', '-e', '-c', command, '/dev/null'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '120' } });
  return { output: run.stdout, status: run.status };
}

/** The paper's task at a toy size: seconds a run. */
const TOY = [
  'train',
  '--task',
  'teacher',
  '--length',
  '64',
  '--sequences',
  '2',
  '--dim',
  '4',
  '--compare-exact',
  'false',
  '--method',
  'exact',
  '--checkpoint-every',
  '2',
];

if (!existsSync(SCRIPT)) console.warn(`skipping the terminal tests of almora: no ${SCRIPT} (util-linux)`);

describe.runIf(existsSync(SCRIPT))('almora at a terminal', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'almora-pty-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints every command, and per command every option with its default and allowed values and examples', () => {
    const top = inTerminal('--help');
    expect(top.status).toBe(0);
    for (const command of ['train', 'train --task teacher', 'pretrain', 'generate', '--version']) expect(top.output).toContain(`almora ${command} `);
    const train = inTerminal('train', '-h');
    expect(train.status).toBe(0);
    expect(train.output).toMatch(/^usage: almora train \[options\]/);
    expect(train.output).toMatch(/--steps <N> +Optimizer steps; with --resume, a larger value extends the run\.\s+\(default: 40\)/);
    expect(train.output).toMatch(/--method <path> +Gradient path of every attention head\. \(one of: auto, exact, fast;\s+default: auto\)/);
    expect(train.output).toContain('examples:');
    const version = inTerminal('--version');
    expect(version.status).toBe(0);
    expect(version.output.trim()).toMatch(/^almora \d+\.\d+\.\d+$/);
  });

  it('answers bad input with one clear line and exit status 1: no parser text, no errno, no stack', () => {
    for (const [args, message] of [
      [['train', '--steps', '-3'], /^almora: --steps must be an integer ≥ 1 .*got -3\s*$/],
      [['train', '--stepz', '3'], /^almora: unknown option --stepz; did you mean --steps\? \(almora train --help lists the options\)\s*$/],
      [
        ['train', '--task', 'teacher', '--data', '/nonexistent/data.safetensors', '--run-dir', path.join(os.tmpdir(), 'almora-pty-unused')],
        /^almora: cannot read \/nonexistent\/data\.safetensors: no such file or directory\s*$/,
      ],
      [
        ['train', '--base', '/nonexistent/base', '--run-dir', path.join(os.tmpdir(), 'almora-pty-unused')],
        /^almora: cannot open \/nonexistent\/base\/config\.json: no such file or directory\s*$/,
      ],
      [['generate'], /^almora: generate needs --prompt <text> \(almora generate --help\)\s*$/],
      [['frobnicate'], /^almora: unknown command "frobnicate"/],
    ] as const) {
      const run = inTerminal(...args);
      expect(run.status, args.join(' ')).toBe(1);
      expect(run.output, args.join(' ')).toMatch(message);
      expect(run.output).not.toMatch(/\n\s+at |ENOENT|ERR_PARSE_ARGS|Unknown option/);
    }
  });

  it('shows a header and a progress line with elapsed time and time left, then the summary', () => {
    const run = inTerminal(...TOY, '--steps', '4', '--run-dir', path.join(dir, 'progress'));
    expect(run.status).toBe(0);
    expect(run.output).toMatch(/^almora train: teacher task of 2 sequences × L = 64 × d = 4/);
    // Redrawn in place: each update starts with a carriage return; the last shows 4/4.
    expect(run.output).toMatch(/\rexact [█░]+ 1\/4 \d+s elapsed, \d+s left · loss /);
    expect(run.output).toMatch(/\rexact █+ 4\/4 \d+s elapsed, 0s left · loss /);
    expect(run.output).toMatch(/exact: loss .* → .*; .* s; 0\/4 steps fast/);
  });

  it('extends a run with --resume and a larger --steps, refuses to shrink one, and refuses to overwrite one without --force', async () => {
    const runDir = path.join(dir, 'extend');
    expect(inTerminal(...TOY, '--steps', '4', '--run-dir', runDir, '--quiet').status).toBe(0);
    const again = inTerminal(...TOY, '--steps', '4', '--run-dir', runDir, '--quiet');
    expect(again.status).toBe(1);
    expect(again.output).toMatch(/^almora: .*extend already holds a run \(.*\): pass --resume to continue it, --force to start over in it/);
    const extended = inTerminal(...TOY, '--steps', '6', '--run-dir', runDir, '--resume', '--quiet');
    expect(extended.status).toBe(0);
    expect(extended.output).toMatch(/exact: resumed from step 4/);
    const steps = (await readFile(path.join(runDir, 'exact', 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { step: number }).step);
    expect(steps).toEqual([0, 1, 2, 3, 4, 5]);
    const shrunk = inTerminal(...TOY, '--steps', '3', '--run-dir', runDir, '--resume', '--quiet');
    expect(shrunk.status).toBe(1);
    expect(shrunk.output).toMatch(/^almora: cannot resume .* at step 6 with --steps 3: a run does not shrink/);
    expect(inTerminal(...TOY, '--steps', '2', '--run-dir', runDir, '--force', '--quiet').status).toBe(0);
  });

  it('exits 1 with a clear message when the loss diverges, even while it is still finite', () => {
    const run = inTerminal(...TOY, '--steps', '30', '--learning-rate', '5', '--clip-norm', '0', '--run-dir', path.join(dir, 'diverge'), '--quiet');
    expect(run.status).toBe(1);
    expect(run.output).toMatch(/^almora: training diverged at step \d+: the loss [\d.e+]+ rose past 10× its first value [\d.e-]+ \(the divergence factor\)/);
  });
});
