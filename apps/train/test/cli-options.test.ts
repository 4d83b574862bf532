import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cliReference, helpText, parseOptions, type CommandSpec } from '../src/cli-options.js';
import { COMMANDS } from '../src/commands.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const SPEC: CommandSpec = {
  command: 'demo',
  summary: 'A demo.',
  description: 'It demonstrates.',
  options: [
    { name: 'steps', value: 'N', description: 'Steps.', default: '5' },
    { name: 'method', value: 'path', description: 'The path.', default: 'auto', choices: ['auto', 'exact'] },
    { name: 'quiet', description: 'Quiet.' },
    { name: 'help', description: 'Help.' },
  ],
  examples: ['almora demo --steps 3'],
};

describe('parseOptions', () => {
  it('parses values and switches, -h as --help', () => {
    expect(parseOptions(SPEC, ['--steps', '3', '--quiet'])).toEqual({ steps: '3', quiet: true });
    expect(parseOptions(SPEC, ['--steps=4'])).toEqual({ steps: '4' });
    expect(parseOptions(SPEC, ['-h'])).toEqual({ help: true });
  });

  it('takes a value that starts with a dash as the value, for its check to judge', () => {
    expect(parseOptions(SPEC, ['--steps', '-3'])).toEqual({ steps: '-3' });
  });

  it("says what is wrong in the user's terms, never the parser's", () => {
    const message = (argv: string[]) => {
      try {
        parseOptions(SPEC, argv);
      } catch (error) {
        return (error as Error).message;
      }
      return 'no error';
    };
    expect(message(['--stepz', '3'])).toBe('unknown option --stepz; did you mean --steps? (almora demo --help lists the options)');
    expect(message(['--frobnicate'])).toBe('unknown option --frobnicate (almora demo --help lists the options)');
    expect(message(['--steps'])).toBe('--steps needs a value: --steps <N> (almora demo --help lists the options)');
    expect(message(['--quiet=yes'])).toBe('--quiet is a switch and takes no value, got "yes"');
    expect(message(['train'])).toBe('unexpected argument "train": options take the form --name value (almora demo --help lists the options)');
    for (const text of ['--stepz', '--steps', '--quiet=yes', 'train'].map((a) => message([a])))
      expect(text).not.toMatch(/Unknown option|ambiguous|ERR_PARSE_ARGS/);
  });
});

describe('help and the CLI reference', () => {
  it('lists every option with its value, description, allowed values and default, and the examples', () => {
    const help = helpText(SPEC);
    expect(help).toMatch(/^usage: almora demo \[options\]\n\nA demo\. It demonstrates\.\n\noptions:\n/);
    expect(help).toContain('  --steps <N>      Steps. (default: 5)');
    expect(help).toContain('  --method <path>  The path. (one of: auto, exact; default: auto)');
    expect(help).toContain('examples:\n  almora demo --steps 3');
  });

  it('every command documents every option it takes', () => {
    for (const command of COMMANDS) {
      expect(command.options.length, command.command).toBeGreaterThan(3);
      for (const option of command.options) expect(option.description.length, `${command.command} --${option.name}`).toBeGreaterThan(5);
      expect(new Set(command.options.map((o) => o.name)).size, command.command).toBe(command.options.length);
    }
  });

  it('CLI.md is the reference generated from the commands (pnpm --filter @almora/train cli-reference after a build rewrites it)', () => {
    expect(readFileSync(path.join(root, 'CLI.md'), 'utf8')).toBe(cliReference(COMMANDS));
  });
});
