import { InvalidArgumentError } from '@almora/tensor';

/** One command-line option: what it takes, what it does, its default and allowed values. */
export interface OptionSpec {
  /** The flag without its dashes: `steps` for `--steps`. */
  name: string;
  /** What the value looks like (`N`, `dir`, `x`), or undefined for a switch. */
  value?: string;
  /** What it does, in a sentence. */
  description: string;
  /** The default, as the user would type it. */
  default?: string;
  /** The allowed values, when a fixed list. */
  choices?: readonly string[];
}

/** A command: its options, in the order help lists them, and examples. */
export interface CommandSpec {
  /** As typed after `almora`: `train`, `train --task teacher`. */
  command: string;
  /** One line: what it does. */
  summary: string;
  /** A paragraph: what it reads and writes. */
  description: string;
  options: readonly OptionSpec[];
  /** Whole command lines, each run as written in a test. */
  examples: readonly string[];
}

/** The switches every training command takes. */
export const RUN_OPTIONS: readonly OptionSpec[] = [
  { name: 'run-dir', value: 'dir', description: 'Where the run writes its checkpoints, metrics, report and adapters.' },
  { name: 'resume', description: 'Continue the run in --run-dir from its newest checkpoint (bit for bit); with a larger --steps, extend it.' },
  { name: 'force', description: 'Start afresh in a --run-dir that already holds a run, replacing its files.' },
  { name: 'quiet', description: 'Print only the summary: no header, no progress.' },
  { name: 'help', description: 'Print this help.' },
];

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join(`\n${indent}`);
}

/** The help of a command: usage, description, every option with its value, default and allowed values, examples. */
export function helpText(spec: CommandSpec): string {
  const flag = (o: OptionSpec) => `--${o.name}${o.value ? ` <${o.value}>` : ''}`;
  const column = Math.max(...spec.options.map((o) => flag(o).length)) + 2;
  const indent = ' '.repeat(column + 2);
  const options = spec.options.map((o) => {
    const facts = [o.choices ? `one of: ${o.choices.join(', ')}` : '', o.default !== undefined ? `default: ${o.default}` : ''].filter((f) => f !== '');
    const text = `${o.description}${facts.length > 0 ? ` (${facts.join('; ')})` : ''}`;
    return `  ${flag(o).padEnd(column)}${wrap(text, Math.max(40, 100 - column), indent)}`;
  });
  return [
    `usage: almora ${spec.command} [options]`,
    '',
    wrap(`${spec.summary} ${spec.description}`, 100, ''),
    '',
    'options:',
    ...options,
    '',
    'examples:',
    ...spec.examples.map((e) => `  ${e}`),
  ].join('\n');
}

/** The command-line reference of every command, as Markdown (the docs site's CLI page). */
export function cliReference(specs: readonly CommandSpec[]): string {
  const escape = (text: string) => text.replace(/\|/g, '\\|');
  const sections = specs.map((spec) => {
    const rows = spec.options.map(
      (o) =>
        `| \`--${o.name}${o.value ? ` <${o.value}>` : ''}\` | ${escape(o.description)} | ${o.default !== undefined ? `\`${o.default}\`` : ''} | ${o.choices ? o.choices.map((c) => `\`${c}\``).join(', ') : ''} |`,
    );
    return [
      `## almora ${spec.command}`,
      '',
      `${spec.summary} ${spec.description}`,
      '',
      '| Option | What it does | Default | Allowed |',
      '| --- | --- | --- | --- |',
      ...rows,
      '',
      'Examples:',
      '',
      '```sh',
      ...spec.examples,
      '```',
    ].join('\n');
  });
  return [
    '# Command-line reference',
    '',
    '`almora` is the trainer of the repository (`apps/train`). From a clone, `npx -y pnpm@12.4.2 train [options]` builds it and runs `almora train`; after a build, `node apps/train/dist/cli.js <command> [options]` runs any command. This page is generated from the same option table the commands parse and print with `--help`; exit status 1 with a one-line `almora: …` message on stderr means bad input or a diverged run, never a silent success.',
    '',
    ...sections.flatMap((s) => [s, '']),
  ].join('\n');
}

/**
 * Parses `argv` against the command's options: values as given (text), switches as true. Every
 * mistake is an {@link InvalidArgumentError} in the user's terms — an unknown option (with the
 * nearest known one), a missing value, a switch given a value, a stray argument. A value
 * that starts with a single dash (`--steps -3`) is the value, for the value check to judge.
 */
export function parseOptions(spec: CommandSpec, argv: readonly string[]): Record<string, string | boolean | undefined> {
  const byName = new Map(spec.options.map((o) => [o.name, o]));
  const args = argv.map((arg) => (arg === '-h' ? '--help' : arg));
  const help = `almora ${spec.command} --help lists the options`;
  const values: Record<string, string | boolean | undefined> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) throw new InvalidArgumentError(`unexpected argument "${arg}": options take the form --name value (${help})`);
    const name = arg.slice(2).split('=')[0];
    const inline = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : undefined;
    const option = byName.get(name);
    if (!option) throw new InvalidArgumentError(`unknown option --${name}${nearest(name, [...byName.keys()])} (${help})`);
    if (option.value === undefined) {
      if (inline !== undefined) throw new InvalidArgumentError(`--${name} is a switch and takes no value, got "${inline}"`);
      values[name] = true;
    } else if (inline !== undefined) values[name] = inline;
    else if (i + 1 < args.length && !args[i + 1].startsWith('--')) values[name] = args[++i];
    else throw new InvalidArgumentError(`--${name} needs a value: --${name} <${option.value}> (${help})`);
  }
  return values;
}

/** ", did you mean --x?" when a known option is within two edits of `name`. */
function nearest(name: string, known: readonly string[]): string {
  const distance = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let previous = row[0];
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const next = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
        previous = row[j];
        row[j] = next;
      }
    }
    return row[b.length];
  };
  const best = known.map((k) => [k, distance(name, k)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 2 ? `; did you mean --${best[0]}?` : '';
}

/** A number option's value, checked; `fallback` when absent. */
export function numberOption(
  values: Record<string, string | boolean | undefined>,
  name: string,
  fallback: number,
  check: (v: number) => boolean,
  what: string,
): number {
  const text = values[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (typeof text !== 'string' || text.trim() === '' || !check(value)) throw new InvalidArgumentError(`--${name} must be ${what}, got "${String(text)}"`);
  return value;
}
