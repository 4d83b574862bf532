#!/usr/bin/env node
import { mkdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Progress } from '@almora/cli-kit';
import { decodeSafetensors } from '@almora/peft';
import { AlmoraError, InvalidArgumentError } from '@almora/tensor';
import { helpText, parseOptions } from './cli-options.js';
import { COMMANDS, kebab, TEACHER_COMMAND } from './commands.js';
import { CONFIG_KEYS, flagValue, parseConfig, resolveConfig, type TrainConfig } from './config.js';
import { lockRunDir, refuseExistingRun, runSubfolder } from '@almora/training';
import { taskFromSafetensors, teacherTask, type TrainingTask } from './task.js';
import { trainRun, type RunResult } from './trainer.js';
import { writeReport } from './report.js';
import { finetuneCommand, generateCommand, pretrainCommand } from './text-cli.js';

/** `almora --help`: every command and what it does. */
function commandsHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.command.length)) + 2;
  return [
    'usage: almora <command> [options]',
    '',
    ...COMMANDS.map((c) => `  almora ${c.command.padEnd(width)}${c.summary}`),
    `  almora ${'--version'.padEnd(width)}Prints the version.`,
    '',
    'almora <command> --help lists its options, their defaults and allowed values, with examples.',
  ].join('\n');
}

/** What a failed system call means, in words: errno names are not for users. */
const ERRNO_WORDS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the file system is read-only',
  EMFILE: 'too many open files',
  EEXIST: 'already exists',
};

const isSystemError = (error: unknown): error is NodeJS.ErrnoException => error instanceof Error && 'syscall' in error;

/** "cannot read /x: no such file or directory" from a Node system error. */
function systemErrorMessage(error: NodeJS.ErrnoException): string {
  const words = (error.code && ERRNO_WORDS[error.code]) ?? error.message;
  const verb =
    { open: 'open', stat: 'read', read: 'read', write: 'write', mkdir: 'create the directory', rename: 'move', unlink: 'remove', scandir: 'list' }[
      error.syscall ?? ''
    ] ?? 'access';
  return error.path ? `cannot ${verb} ${error.path}: ${words}` : words;
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

async function readConfigFile(file: string): Promise<Partial<TrainConfig>> {
  const text = await readFile(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`${file} is not valid JSON: ${messageOf(error)}`);
  }
  return parseConfig(json, file);
}

function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let k = 0;
  for (; bytes >= 1000 && k < units.length - 1; k++) bytes /= 1000;
  return `${bytes < 10 ? bytes.toFixed(1) : Math.round(bytes)} ${units[k]}`;
}

/** The one line said before any heavy work: what will run, how big, and where. */
function announce(config: TrainConfig, runDir: string, data: { file: string; bytes: number } | undefined, resume: boolean): string {
  const task = data
    ? `dataset ${data.file} (${formatBytes(data.bytes)})`
    : `teacher task of ${config.sequences} sequences × L = ${config.length} × d = ${config.dim} (X and Y ≈ ${formatBytes(2 * config.sequences * config.length * config.dim * 8)})`;
  const runs = config.compareExact && config.method !== 'exact' ? `${config.method} + exact side by side` : config.method;
  return `almora train: ${task}, ${config.heads} head${config.heads === 1 ? '' : 's'}, targets ${config.targets.join(', ')} at rank ${config.rank}; ${config.steps} steps of ${runs}${resume ? ', resuming' : ''} on the ${config.backend} backend; run dir ${runDir}`;
}

async function loadTask(config: TrainConfig, dataFile: string | undefined, quiet: boolean): Promise<TrainingTask> {
  if (dataFile) return taskFromSafetensors(decodeSafetensors(new Uint8Array(await readFile(dataFile))));
  // Its targets come from exact attention, O(L²·d) per sequence: at a large L this is the long wait.
  if (!quiet) process.stdout.write(`building the teacher task (${config.sequences} exact attention passes at L = ${config.length}) … `);
  const began = performance.now();
  const task = teacherTask(config);
  if (!quiet) process.stdout.write(`${((performance.now() - began) / 1000).toFixed(1)} s\n`);
  return task;
}

async function train(argv: string[]): Promise<void> {
  const values = parseOptions(TEACHER_COMMAND, argv);
  if (values.help) {
    console.log(helpText(TEACHER_COMMAND));
    return;
  }
  const fromFile = typeof values.config === 'string' ? await readConfigFile(values.config) : {};
  // One flag at a time, so a bad value is named by its flag.
  const flags: Partial<TrainConfig> = {};
  for (const key of CONFIG_KEYS) {
    const text = values[kebab(key)];
    if (typeof text === 'string') Object.assign(flags, parseConfig({ [key]: flagValue(key, text) }, `--${kebab(key)}`));
  }
  const config: TrainConfig = resolveConfig(fromFile, flags);
  const runDir = path.resolve(typeof values['run-dir'] === 'string' ? values['run-dir'] : 'runs/default');
  const quiet = values.quiet === true;
  const resume = values.resume === true;
  const dataFile = typeof values.data === 'string' ? values.data : undefined;
  await mkdir(runDir, { recursive: true });
  // The whole command holds the top folder: its runs write in subfolders, report.md and loss.svg here.
  const lock = await lockRunDir(runDir);
  try {
    await refuseExistingRun(runDir, resume, values.force === true);
    if (!quiet) console.log(announce(config, runDir, dataFile ? { file: dataFile, bytes: (await stat(dataFile)).size } : undefined, resume));
    if (lock.note) console.log(lock.note);
    await trainAndReport(config, await loadTask(config, dataFile, quiet), runDir, quiet, resume);
  } finally {
    await lock.release();
  }
}

async function trainAndReport(config: TrainConfig, task: TrainingTask, runDir: string, quiet: boolean, resume: boolean): Promise<void> {
  const run = async (label: string, method: TrainConfig['method'], normControl: boolean): Promise<RunResult> => {
    const dir = await runSubfolder(path.join(runDir, label));
    const progress = new Progress(quiet);
    let started = false;
    const result = await trainRun(config, task, dir, {
      resume,
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
  const main = await run(config.method, config.method, true);
  const reference = config.compareExact && config.method !== 'exact' ? await run('exact', 'exact', false) : undefined;
  const report = await writeReport(runDir, config, main, reference);
  for (const [name, r] of [[config.method, main], ...(reference ? [['exact', reference]] : [])] as [string, RunResult][]) {
    const last = r.records[r.records.length - 1];
    const fast = r.records.filter((x) => x.method === 'fast').length;
    const errors = Object.entries(r.deltaErrors)
      .map(([t, e]) => `${t} ${e!.toFixed(3)}`)
      .join(', ');
    const recovery = errors ? `; ‖(α/r)BA − ΔW‖/‖ΔW‖: ${errors}` : '';
    console.log(
      `${name}: loss ${r.initialLoss.toPrecision(4)} → ${last.loss.toPrecision(4)}${recovery}; ${r.seconds.toFixed(1)} s; ${fast}/${r.records.length} steps fast`,
    );
  }
  console.log(`report: ${report}`);
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'train') {
    // --task teacher is the paper's synthetic task with its own options; anything else is the text job.
    const task = rest.findIndex((arg, n) => arg === '--task=teacher' || (arg === '--task' && rest[n + 1] === 'teacher'));
    if (task >= 0) return train(rest.filter((_, n) => n !== task && !(rest[task] === '--task' && n === task + 1)));
    const other = rest.find((arg, n) => arg.startsWith('--task=') || (rest[n - 1] === '--task' && arg !== 'text'));
    if (other !== undefined && other !== '--task=text') throw new InvalidArgumentError(`--task must be text or teacher, got "${other.replace('--task=', '')}"`);
    return finetuneCommand(rest);
  }
  if (command === 'pretrain') return pretrainCommand(rest);
  if (command === 'generate') return generateCommand(rest);
  if (command === '--version' || command === '-v') {
    const { version } = createRequire(import.meta.url)('../package.json') as { version: string };
    console.log(`almora ${version}`);
    return;
  }
  if (command !== undefined && command !== '--help' && command !== '-h')
    throw new InvalidArgumentError(`unknown command "${command}"; the commands are train, pretrain and generate (almora --help)`);
  console.log(commandsHelp());
}

main().catch((error: unknown) => {
  process.exitCode = 1;
  if (error instanceof AlmoraError) {
    // A library's typed error around a system error (a base folder that is not there): said in words, with its path.
    console.error(`almora: ${isSystemError(error.cause) ? systemErrorMessage(error.cause) : error.message}`);
    return;
  }
  // A system error (a missing file, a full disk) is the user's to fix: said in words, with its path.
  if (isSystemError(error)) {
    console.error(`almora: ${systemErrorMessage(error)}`);
    return;
  }
  const debug = process.env.ALMORA_DEBUG === '1';
  const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  console.error(
    `almora: unexpected error: ${what}\nThis is probably a bug in almora: please report it with the stack trace${debug ? ' below' : ' (run again with ALMORA_DEBUG=1 to see it)'}.`,
  );
  if (debug && error instanceof Error) console.error(error.stack);
});
