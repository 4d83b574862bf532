import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@almora/tensor';
import { DEFAULT_CONFIG, parseConfig, resolveConfig } from '../src/index.js';

describe('config', () => {
  it('names an unknown key and lists the known ones', () => {
    expect(() => parseConfig({ stepz: 3 }, 'run.json')).toThrow(InvalidArgumentError);
    expect(() => parseConfig({ stepz: 3 }, 'run.json')).toThrow(/run\.json: unknown key "stepz"; known keys: seed, length/);
  });

  it('names a key of the wrong type or range', () => {
    expect(() => parseConfig({ steps: '10' }, 'run.json')).toThrow(/"steps" must be an integer > 0, got "10"/);
    expect(() => parseConfig({ learningRate: -1 }, 'flags')).toThrow(/flags: "learningRate" must be a number > 0/);
    expect(() => parseConfig({ method: 'quick' }, 'run.json')).toThrow(/"method" must be one of "exact", "fast", "auto"/);
    expect(() => parseConfig({ targets: ['q', 'o'] }, 'run.json')).toThrow(/"targets" must be a list of distinct targets/);
    expect(() => parseConfig({ causal: 'yes' }, 'run.json')).toThrow(/"causal" must be true or false/);
    expect(() => parseConfig([1], 'run.json')).toThrow(/must be a JSON object/);
  });

  it('refuses keys inherited from Object.prototype and integers past 2^53 (found by the #12 fuzz suite)', () => {
    expect(() => parseConfig(JSON.parse('{"__proto__": ["q", "k"]}'), 'run.json')).toThrow(/unknown key "__proto__"/);
    expect(() => parseConfig({ constructor: 1 }, 'run.json')).toThrow(InvalidArgumentError);
    expect(() => parseConfig({ dim: 1e308 }, 'flags')).toThrow(/"dim" must be an integer > 0, got 1e\+308/);
    expect(() => resolveConfig({ length: 2e9 })).toThrow(/a sequence \(length × dim\) would have 8000000000 entries, more than the 2\^32/);
    expect(() => resolveConfig({ dim: 2 ** 17, heads: 1, rank: 1 })).toThrow(/a weight \(dim × dim\)/);
  });

  it('names a value nested too deep to print by its kind instead of overflowing the stack (found by the #12 fuzz suite)', () => {
    const deep = JSON.parse(`{"causal": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`) as Record<string, unknown>;
    expect(() => parseConfig(deep, 'run.json')).toThrow(/"causal" must be true or false, got a list of 1/);
    expect(() => parseConfig({ seed: { a: 1 } }, 'run.json')).toThrow(/"seed" must be .*, got an object/);
  });

  it('takes a backend of the registry and refuses one that is unknown or cannot run here', () => {
    expect(parseConfig({ backend: 'wasm' }, 'flags')).toEqual({ backend: 'wasm' });
    expect(() => parseConfig({ backend: 'tpu' }, 'flags')).toThrow(/unknown backend "tpu"; choose from cpu, wasm/);
    expect(() => parseConfig({ backend: 'wasm:0' }, 'flags')).toThrow(/"backend" must be a backend that runs here: .*positive whole number/);
    expect(() => parseConfig({ backend: 3 }, 'flags')).toThrow(/"backend" must be a backend name/);
  });

  it('layers defaults, file and flags, and checks relations', () => {
    const config = resolveConfig(parseConfig({ steps: 5, dim: 6 }, 'file'), parseConfig({ steps: 7 }, 'flags'));
    expect(config.steps).toBe(7);
    expect(config.dim).toBe(6);
    expect(config.length).toBe(DEFAULT_CONFIG.length);
    expect(() => resolveConfig({ dim: 6, heads: 4 })).toThrow(/multiple of "heads"/);
    expect(() => resolveConfig({ batchSize: 9, sequences: 8 })).toThrow(/exceeds "sequences"/);
  });
});
