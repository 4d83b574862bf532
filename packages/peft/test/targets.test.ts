import { spawnSync } from 'node:child_process';
import { pythonModuleMissing, SYSTEM_PYTHON } from '@almora/vitest-config/python';
import { describe, expect, it } from 'vitest';
import { compileConfig } from '../src/config.js';
import { loraConfig, loraScaling, parseAdapterConfig, PeftError, type LoraConfigInput } from '../src/index.js';
import { ModulePattern } from '../src/pattern.js';

const MODULES = [
  'model.layers.0.self_attn.q_proj',
  'model.layers.0.self_attn.k_proj',
  'model.layers.0.self_attn.v_proj',
  'model.layers.0.mlp.down_proj',
  'model.layers.1.self_attn.q_proj',
  'model.layers.1.mlp.down_proj',
  'vision.blocks.0.attn.q_proj',
  'lm_head',
];

/** The modules PEFT would adapt among MODULES (the model's linear layers) for a config. */
function selected(input: Partial<LoraConfigInput>): string[] {
  const compiled = compileConfig(loraConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'], ...input }), (m) => new PeftError(m));
  const budget = { steps: 1e7 };
  return compiled.target.select(MODULES, budget).filter((m) => !(compiled.exclude?.matches(m, budget) ?? false));
}

describe('target_modules, as PEFT resolves it', () => {
  it('a list selects a path equal to an entry or ending in "." + the entry', () => {
    expect(selected({ target_modules: ['q_proj'] })).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.1.self_attn.q_proj',
      'vision.blocks.0.attn.q_proj',
    ]);
    expect(selected({ target_modules: ['self_attn.q_proj', 'lm_head'] })).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.1.self_attn.q_proj',
      'lm_head',
    ]);
    // A suffix must start after a dot: "proj" is not a module name here, "_proj" neither.
    expect(selected({ target_modules: ['proj', '_proj', 'layers.0'] })).toEqual([]);
    expect(selected({ target_modules: ['model.layers.1.mlp.down_proj'] })).toEqual(['model.layers.1.mlp.down_proj']);
  });

  it('a string is a regex the whole path must match (re.fullmatch), not a search', () => {
    expect(selected({ target_modules: 'q_proj' })).toEqual([]);
    expect(selected({ target_modules: '.*\\.(q_proj|v_proj)' })).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'vision.blocks.0.attn.q_proj',
    ]);
    expect(selected({ target_modules: 'model\\.layers\\.\\d+\\.self_attn\\.[qk]_proj' })).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.k_proj',
      'model.layers.1.self_attn.q_proj',
    ]);
    expect(selected({ target_modules: '^model.*down_proj$' })).toEqual(['model.layers.0.mlp.down_proj', 'model.layers.1.mlp.down_proj']);
  });

  it('"all-linear" selects every linear layer but the output layer (lm_head)', () => {
    expect(selected({ target_modules: 'all-linear' })).toEqual(MODULES.filter((m) => m !== 'lm_head'));
  });

  it('exclude_modules takes modules out with the same rules', () => {
    expect(selected({ target_modules: 'all-linear', exclude_modules: 'vision\\..*' })).toEqual(MODULES.slice(0, 6));
    expect(selected({ target_modules: ['q_proj'], exclude_modules: ['attn.q_proj'] })).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.1.self_attn.q_proj',
    ]);
  });
});

describe('rank_pattern, alpha_pattern and the scaling', () => {
  it('scaling = lora_alpha / r, or lora_alpha / √r with use_rslora', () => {
    expect(loraScaling(loraConfig({ r: 8, lora_alpha: 16, target_modules: ['q_proj'] }), 'a.q_proj')).toBe(2);
    expect(loraScaling(loraConfig({ r: 16, lora_alpha: 8, target_modules: ['q_proj'], use_rslora: true }), 'a.q_proj')).toBe(2);
  });

  it('a key matches the end of a path after a dot, as re.match(rf"(.*\\.)?({key})$", path); the first such key wins', () => {
    const config = loraConfig({
      r: 8,
      lora_alpha: 16,
      target_modules: 'all-linear',
      rank_pattern: { q_proj: 4, 'layers\\.1\\..*': 2 },
      alpha_pattern: { 'mlp.down_proj': 1 },
    });
    expect(loraScaling(config, 'model.layers.0.self_attn.q_proj')).toBe(16 / 4);
    expect(loraScaling(config, 'model.layers.1.self_attn.q_proj')).toBe(16 / 4); // q_proj comes first
    expect(loraScaling(config, 'model.layers.1.self_attn.k_proj')).toBe(16 / 2);
    expect(loraScaling(config, 'model.layers.0.mlp.down_proj')).toBe(1 / 8);
    expect(loraScaling(config, 'model.layers.0.self_attn.xq_proj')).toBe(2); // "q_proj" must follow a dot
  });
});

describe('module patterns match in linear time', () => {
  const fail = (m: string) => new PeftError(m);

  it('nested repeats that take a backtracking engine exponential time answer at once', () => {
    const long = `${'a'.repeat(5000)}!`;
    for (const source of ['(a|a)*b', '(a+)+$', '((((((((((.*)*)*)*)*)*)*)*)*)*)*b', '(a*)*(a*)*(a*)*b']) {
      expect(ModulePattern.compile(source, fail).fullMatch(long, { steps: 1e7 }, fail)).toBe(false);
    }
  });

  it('a step budget bounds the work of every match of one load; past it, a typed error', () => {
    const pattern = ModulePattern.compile('(.*a){20}', fail);
    const budget = { steps: 100_000 };
    expect(() => {
      for (let i = 0; i < 1000; i++) pattern.fullMatch('a'.repeat(200), budget, fail);
    }).toThrow(/step budget/);
  });

  it.each([
    ['(?=q)q_proj', /lookaround are not supported/],
    ['(?<!x)q_proj', /lookaround are not supported/],
    ['(q)\\1', /backreferences are not supported/],
    ['(?P<n>q)(?P=n)', /backreferences are not supported/],
    ['(?i)q_proj', /inline flags/],
    ['\\bq_proj', /word boundaries/],
    ['[', /unterminated character set/],
    ['(q', /missing '\)'/],
    ['q)', /unbalanced/],
    ['*q', /nothing to repeat/],
    ['q**', /multiple repeat/],
    ['q{3,2}', /min repeat greater than max/],
    ['q{100000}', /repeat count above/],
    [`${'q|'.repeat(30_000)}q`, /more than 20000 instructions/],
    ['[z-a]', /bad character range/],
    ['\\q', /bad escape/],
  ])('refuses %s with a typed error naming the feature', (source, message) => {
    expect(() => ModulePattern.compile(source.length > 100 ? source : source, fail)).toThrow(message);
    expect(() => parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', r: 1, lora_alpha: 1, target_modules: source }))).toThrow(PeftError);
  });

  // The same patterns and names through Python's re.fullmatch: the engines must agree.
  const CASES: [string, string[]][] = [
    ['.*\\.(q_proj|v_proj)', ['a.q_proj', 'q_proj', 'a.v_proj', 'a.k_proj', 'a.q_proj.b']],
    [
      'model\\.layers\\.\\d+\\.self_attn\\.[qkv]_proj',
      ['model.layers.12.self_attn.k_proj', 'model.layers..self_attn.k_proj', 'model.layers.1.self_attn.o_proj'],
    ],
    ['^(?:model|vision)\\.[^.]+\\..*$', ['model.x.y', 'vision.a.b', 'model.x', 'text.a.b']],
    ['(?P<blk>layers)\\.[0-3]\\.(mlp|attn)\\.\\w+', ['layers.2.mlp.up_proj', 'layers.4.mlp.up_proj', 'layers.0.attn.c-attn']],
    ['[^a-c]{2,4}x?', ['dd', 'ddddd', 'ddx', 'ab', 'd']],
    ['(a|ab)(c|bcd)(d*)', ['abcd', 'abcdd', 'acd', 'abbcd']],
    ['\\x71_proj|\\u0076_proj|\\\\', ['q_proj', 'v_proj', '\\', 'k_proj']],
    ['(.*\\.)?(q_proj)$', ['model.q_proj', 'q_proj', 'xq_proj', 'a.q_proj\n']],
    ['a{,3}b{2}c{1,}d{}', ['bbcd{}', 'aaabbcccd{}', 'aaaabbcd{}', 'bbcd', 'bbc']],
    ['x{,}y{ 1}z{1', ['xxxy{ 1}z{1', 'y{ 1}z{1', 'xy1z1']],
    ['[\\d.]+|[\\w-]*', ['0.12', 'a-b_c', 'a b', '']],
  ];
  const missing = pythonModuleMissing('re');
  it.skipIf(missing !== undefined)(`agrees with Python's re.fullmatch on ${CASES.length} patterns${missing ? ` (skipped: ${missing})` : ''}`, () => {
    const script =
      'import json, re, sys\ncases = json.load(sys.stdin)\nprint(json.dumps([[re.fullmatch(p, s) is not None for s in names] for p, names in cases]))';
    const run = spawnSync(SYSTEM_PYTHON, ['-c', script], { input: JSON.stringify(CASES), encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const python = JSON.parse(run.stdout) as boolean[][];
    const ours = CASES.map(([source, names]) => names.map((name) => ModulePattern.compile(source, fail).fullMatch(name, { steps: 1e7 }, fail)));
    expect(ours).toEqual(python);
  });
});

describe('adapter_config.json fields', () => {
  const base = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] };
  const text = (fields: Record<string, unknown>) => JSON.stringify({ ...base, ...fields });

  it("fills PEFT's defaults for missing fields and ignores fields that change nothing", () => {
    const config = parseAdapterConfig(text({ revision: null, init_lora_weights: true, layers_pattern: null, auto_mapping: null }));
    expect(config).toEqual({
      ...base,
      task_type: null,
      base_model_name_or_path: null,
      lora_dropout: 0,
      bias: 'none',
      fan_in_fan_out: false,
      use_rslora: false,
      exclude_modules: null,
      rank_pattern: {},
      alpha_pattern: {},
      inference_mode: true,
    });
  });

  it.each([
    ['another peft_type', { peft_type: 'IA3' }, /peft_type is the string "IA3"/],
    ['DoRA', { use_dora: true }, /use_dora is true/],
    ['trained biases', { bias: 'lora_only' }, /bias is the string "lora_only"/],
    ['modules_to_save', { modules_to_save: ['lm_head'] }, /modules_to_save is a list of 1/],
    ['layers_to_transform', { layers_to_transform: [0, 1] }, /layers_to_transform is a list of 2/],
    ['a fractional r', { r: 2.5 }, /r must be an integer ≥ 1, got 2.5/],
    ['r = 0', { r: 0 }, /r must be an integer ≥ 1, got 0/],
    ['lora_alpha 1e999', { lora_alpha: 0 }, /lora_alpha must be a finite number > 0/],
    ['target_modules null', { target_modules: null }, /PEFT would pick modules by architecture/],
    ['an empty target_modules', { target_modules: [] }, /target_modules must be a non-empty list/],
    ['a target module that is not a string', { target_modules: ['q_proj', 3] }, /target_modules must be/],
    ['a rank_pattern of 0', { rank_pattern: { q_proj: 0 } }, /rank_pattern\["q_proj"\] must be an integer ≥ 1/],
    ['a lora_dropout of 2', { lora_dropout: 2 }, /lora_dropout must be a number in \[0, 1\]/],
    ['fan_in_fan_out "yes"', { fan_in_fan_out: 'yes' }, /fan_in_fan_out must be true or false/],
  ])('refuses %s', (_what, fields, message) => {
    expect(() => parseAdapterConfig(text(fields))).toThrow(PeftError);
    expect(() => parseAdapterConfig(text(fields))).toThrow(message);
  });

  it('refuses a config that is not one JSON object: null, a list, broken or duplicated keys, 10^5 levels deep', () => {
    for (const bad of ['null', '[]', '{"r": 2,', `{"r": 1, "r": 2}`, `${'['.repeat(100_000)}${']'.repeat(100_000)}`, ''])
      expect(() => parseAdapterConfig(bad)).toThrow(PeftError);
    expect(() => parseAdapterConfig(text({}).replace('"lora_alpha":8', '"lora_alpha":1e999'))).toThrow(/lora_alpha must be a finite number > 0, got Infinity/);
  });

  it('reads "__proto__" and "constructor" as plain keys', () => {
    const config = parseAdapterConfig(text({}).replace('{', '{"__proto__": {"r": 99}, "constructor": 1,'));
    expect(config.r).toBe(4);
    expect(({} as Record<string, unknown>).r).toBeUndefined();
  });
});
