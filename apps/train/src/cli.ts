#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Progress } from '@almora/bench';
import { CONFIG_KEYS, flagValue, parseConfig, resolveConfig, type TrainConfig } from './config.js';
import { writeReport } from './report.js';
import { decodeSafetensors } from './safetensors.js';
import { taskFromSafetensors, teacherTask, type TrainingTask } from './task.js';
import { trainRun, type RunResult } from './trainer.js';

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

const usage = `usage: almora train [--config file.json] [--data file.safetensors] [--run-dir dir] [--resume] [--quiet] [--<key> value …]
keys (also valid in the config file, camelCase there): ${CONFIG_KEYS.map(kebab).join(', ')}
With no options it trains the embedded default task: auto and exact side by side, about a minute.
--data reads w_q, w_k, w_v (dim×dim) and sequences x.0, y.0, x.1, y.1, … (L×dim) instead.`;

async function train(argv: string[]): Promise<void> {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    config: { type: 'string' },
    'run-dir': { type: 'string' },
    data: { type: 'string' },
    resume: { type: 'boolean' },
    quiet: { type: 'boolean' },
    help: { type: 'boolean' },
  };
  for (const key of CONFIG_KEYS) options[kebab(key)] = { type: 'string' };
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (values.help) {
    console.log(usage);
    return;
  }
  const fromFile = typeof values.config === 'string' ? parseConfig(JSON.parse(await readFile(values.config, 'utf8')), values.config) : {};
  const flags: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const text = values[kebab(key)];
    if (typeof text === 'string') flags[key] = flagValue(key, text);
  }
  const config: TrainConfig = resolveConfig(fromFile, parseConfig(flags, 'flags'));
  const runDir = path.resolve(typeof values['run-dir'] === 'string' ? values['run-dir'] : 'runs/default');
  const quiet = values.quiet === true;
  const task: TrainingTask = typeof values.data === 'string' ? taskFromSafetensors(decodeSafetensors(new Uint8Array(await readFile(values.data)))) : teacherTask(config);
  const run = async (label: string, dir: string, method: TrainConfig['method'], normControl: boolean): Promise<RunResult> => {
    const progress = new Progress(quiet);
    let started = false;
    const result = await trainRun(config, task, dir, {
      resume: values.resume === true,
      method,
      normControl,
      onStep: (r) => {
        // Started at the first step run, so a resumed run's bar begins where it left off.
        if (!started) progress.start(label, config.steps, r.step);
        started = true;
        progress.tick(`loss ${r.loss.toPrecision(4)} · ${(r.seconds * 1000).toFixed(0)} ms · ${r.method}`);
      },
    });
    progress.finish();
    if (result.resumedFrom !== undefined) console.log(`${label}: resumed from step ${result.resumedFrom}`);
    for (const note of result.notes) console.log(`${label}: ${note}`);
    return result;
  };
  const main = await run(config.method, path.join(runDir, config.method), config.method, true);
  const reference = config.compareExact && config.method !== 'exact' ? await run('exact', path.join(runDir, 'exact'), 'exact', false) : undefined;
  const report = await writeReport(runDir, config, main, reference);
  for (const [name, r] of [[config.method, main], ...(reference ? [['exact', reference]] : [])] as [string, RunResult][]) {
    const last = r.records[r.records.length - 1];
    const fast = r.records.filter((x) => x.method === 'fast').length;
    const errors = Object.entries(r.deltaErrors)
      .map(([t, e]) => `${t} ${e!.toFixed(3)}`)
      .join(', ');
    const recovery = errors ? `; ‖(α/r)BA − ΔW‖/‖ΔW‖: ${errors}` : '';
    console.log(`${name}: loss ${r.initialLoss.toPrecision(4)} → ${last.loss.toPrecision(4)}${recovery}; ${r.seconds.toFixed(1)} s; ${fast}/${r.records.length} steps fast`);
  }
  console.log(`report: ${report}`);
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'train') return train(rest);
  console.log(usage);
  if (command !== undefined && command !== '--help' && command !== '-h') process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(`almora: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
