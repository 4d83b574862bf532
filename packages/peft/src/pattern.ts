/**
 * The module-name patterns of PEFT's `target_modules` (a string), `exclude_modules`,
 * `rank_pattern` and `alpha_pattern`: Python `re` syntax, matched in linear time.
 *
 * A config file is untrusted input, and a backtracking engine (JavaScript's RegExp, Python's re)
 * can take exponential time on a pattern like `(a|a)*b`. This is a Thompson-NFA simulation (Pike's
 * VM without captures): time O(name length × pattern size), charged to a {@link MatchBudget}
 * shared by every match of one load, so no config and no file can make a load hang. It covers the
 * syntax module patterns use — literals, `.`, classes, `\d \w \s` and their negations, groups
 * (plain, `(?:…)`, `(?P<name>…)`), `|`, `* + ? {m} {m,} {m,n} {,n}` and their lazy forms, `^ $ \A
 * \Z` — and refuses the rest (lookaround, backreferences, inline flags, `\b`) with a typed error
 * rather than guess.
 */
import type { AlmoraError } from '@almora/tensor';

/** Steps left for matching; one budget is shared by every match of one load. */
export interface MatchBudget {
  steps: number;
}

type Test = (c: number) => boolean;
type Node =
  | { kind: 'char'; test: Test }
  | { kind: 'seq'; items: Node[] }
  | { kind: 'alt'; options: Node[] }
  | { kind: 'repeat'; node: Node; min: number; max: number }
  | { kind: 'assert'; at: 'bol' | 'eol' | 'start' | 'end' };

const enum Op {
  Char,
  Split,
  Jump,
  Assert,
  Match,
}
type Instruction =
  | { op: Op.Char; test: Test }
  | { op: Op.Split; x: number; y: number }
  | { op: Op.Jump; x: number }
  | { op: Op.Assert; at: 'bol' | 'eol' | 'start' | 'end' }
  | { op: Op.Match };

/** Largest compiled pattern, in instructions (a{10000} is 10,001). */
const MAX_PROGRAM = 20_000;
const MAX_GROUP_DEPTH = 100;
const MAX_REPEAT = 10_000;

const unicode =
  (re: RegExp): Test =>
  (c) =>
    re.test(String.fromCodePoint(c));
const DIGIT = unicode(/\p{Nd}/u);
const WORD = unicode(/[\p{L}\p{N}_]/u);
const SPACE = unicode(/\s/u);
const CLASSES: Record<string, Test> = { d: DIGIT, D: (c) => !DIGIT(c), w: WORD, W: (c) => !WORD(c), s: SPACE, S: (c) => !SPACE(c) };
const CONTROLS: Record<string, number> = { n: 10, t: 9, r: 13, f: 12, v: 11, a: 7 };

/** A PEFT module-name pattern, compiled; {@link ModulePattern.fullMatch} is Python's `re.fullmatch`. */
export class ModulePattern {
  private constructor(
    /** The pattern as written. */
    readonly source: string,
    private readonly program: Instruction[],
  ) {}

  /** Compiles `source`; a syntax error or an unsupported feature is `fail(message)`. */
  static compile(source: string, fail: (message: string) => AlmoraError): ModulePattern {
    return new ModulePattern(source, emit(new Parser(source, fail).parse(), fail));
  }

  /** Whether the whole of `text` matches; past the budget, `fail(message)`. */
  fullMatch(text: string, budget: MatchBudget, fail: (message: string) => AlmoraError): boolean {
    // Every call costs at least the program's size (the marks below), so it is charged up front.
    budget.steps -= this.program.length;
    const chars = Array.from(text, (s) => s.codePointAt(0)!);
    const n = chars.length;
    const seen = new Int32Array(this.program.length).fill(-1);
    let current: number[] = [];
    const add = (list: number[], start: number, pos: number, mark: number) => {
      const stack = [start];
      while (stack.length > 0) {
        const pc = stack.pop()!;
        if (seen[pc] === mark) continue;
        seen[pc] = mark;
        if (--budget.steps < 0)
          throw fail("matching module names against the config's patterns ran past its step budget (the patterns or the names are too large)");
        const ins = this.program[pc];
        if (ins.op === Op.Jump) stack.push(ins.x);
        else if (ins.op === Op.Split) stack.push(ins.y, ins.x);
        else if (ins.op === Op.Assert) {
          const ok = ins.at === 'bol' || ins.at === 'start' ? pos === 0 : ins.at === 'end' ? pos === n : pos === n || (pos === n - 1 && chars[pos] === 10);
          if (ok) stack.push(pc + 1);
        } else list.push(pc);
      }
    };
    add(current, 0, 0, 0);
    for (let pos = 0; pos < n && current.length > 0; pos++) {
      const next: number[] = [];
      for (const pc of current) {
        const ins = this.program[pc];
        if (ins.op === Op.Char && ins.test(chars[pos])) add(next, pc + 1, pos + 1, pos + 1);
      }
      current = next;
    }
    return current.some((pc) => this.program[pc].op === Op.Match);
  }
}

/** A Python `re` parser for the subset above. */
class Parser {
  private at = 0;
  constructor(
    private readonly text: string,
    private readonly fail: (message: string) => AlmoraError,
  ) {}

  private error(what: string): AlmoraError {
    return this.fail(`pattern ${JSON.stringify(this.text.slice(0, 80))}: ${what} at position ${this.at}`);
  }

  parse(): Node {
    const node = this.alternation(0);
    if (this.at < this.text.length) throw this.error("unbalanced ')'");
    return node;
  }

  private alternation(depth: number): Node {
    const options = [this.sequence(depth)];
    while (this.text[this.at] === '|') {
      this.at++;
      options.push(this.sequence(depth));
    }
    return options.length === 1 ? options[0] : { kind: 'alt', options };
  }

  private sequence(depth: number): Node {
    const items: Node[] = [];
    while (this.at < this.text.length && this.text[this.at] !== '|' && this.text[this.at] !== ')') {
      const atom = this.atom(depth);
      const bounds = this.quantifier();
      if (!bounds) {
        items.push(atom);
        continue;
      }
      if (atom.kind === 'assert') throw this.error('nothing to repeat');
      if (this.text[this.at] === '?')
        this.at++; // lazy: the same language, and fullMatch asks only whether
      else if (this.text[this.at] === '+') throw this.error('possessive quantifiers are not supported');
      if (this.quantifier()) throw this.error('multiple repeat');
      items.push({ kind: 'repeat', node: atom, min: bounds[0], max: bounds[1] });
    }
    return { kind: 'seq', items };
  }

  /** `*`, `+`, `?` or `{m,n}` at the cursor (consumed), else undefined; a `{` that is no quantifier is a literal. */
  private quantifier(): [number, number] | undefined {
    const c = this.text[this.at];
    if (c === '*' || c === '+' || c === '?') {
      this.at++;
      return c === '*' ? [0, Infinity] : c === '+' ? [1, Infinity] : [0, 1];
    }
    // As Python's parser: `{}` is literal text, `{,n}` and `{m,}` are repeats, `{` not closing a repeat is a literal.
    if (c !== '{' || this.text[this.at + 1] === '}') return undefined;
    const m = /\{(\d*)(?:(,)(\d*))?\}/y;
    m.lastIndex = this.at;
    const found = m.exec(this.text);
    if (!found) return undefined;
    this.at += found[0].length;
    const [, low, comma, high] = found;
    const min = low ? Number(low) : 0;
    const max = comma ? (high ? Number(high) : Infinity) : low ? min : Infinity;
    if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw this.error(`a repeat count above ${MAX_REPEAT}`);
    if (min > max) throw this.error('min repeat greater than max repeat');
    return [min, max];
  }

  private atom(depth: number): Node {
    const t = this.text;
    const c = t[this.at];
    if (c === '(') {
      if (depth >= MAX_GROUP_DEPTH) throw this.error(`groups nested deeper than ${MAX_GROUP_DEPTH}`);
      this.at++;
      if (t.startsWith('?:', this.at)) this.at += 2;
      else if (t.startsWith('?P<', this.at)) {
        const close = t.indexOf('>', this.at);
        if (close < 0 || !/^[A-Za-z_]\w*$/.test(t.slice(this.at + 3, close))) throw this.error('bad group name');
        this.at = close + 1;
      } else if (t.startsWith('?#', this.at)) {
        const close = t.indexOf(')', this.at);
        if (close < 0) throw this.error('missing ), unterminated comment');
        this.at = close + 1;
        return { kind: 'seq', items: [] };
      } else if (t[this.at] === '?') {
        const kind = /^\?(?:[=!]|<[=!])/.test(t.slice(this.at, this.at + 3))
          ? 'lookaround'
          : t.startsWith('?P=', this.at)
            ? 'backreferences'
            : 'inline flags and conditionals';
        throw this.error(`${kind} are not supported`);
      }
      const inner = this.alternation(depth + 1);
      if (t[this.at] !== ')') throw this.error("missing ')'");
      this.at++;
      return inner;
    }
    if (c === '[') return { kind: 'char', test: this.characterClass() };
    if (c === '*' || c === '+' || c === '?') throw this.error('nothing to repeat');
    if (c === '{') {
      const before = this.at;
      if (this.quantifier()) {
        this.at = before;
        throw this.error('nothing to repeat');
      }
    }
    this.at++;
    if (c === '.') return { kind: 'char', test: (x) => x !== 10 };
    if (c === '^') return { kind: 'assert', at: 'bol' };
    if (c === '$') return { kind: 'assert', at: 'eol' };
    if (c === '\\') {
      const e = t[this.at];
      if (e === 'A' || e === 'Z') {
        this.at++;
        return { kind: 'assert', at: e === 'A' ? 'start' : 'end' };
      }
      if (e === 'b' || e === 'B') throw this.error('word boundaries (\\b, \\B) are not supported');
      const escaped = this.escape();
      return { kind: 'char', test: typeof escaped === 'number' ? (x) => x === escaped : escaped };
    }
    const code = t.codePointAt(this.at - 1)!;
    if (code > 0xffff) this.at++;
    return { kind: 'char', test: (x) => x === code };
  }

  /** After a backslash: a class test (`\d`, …) or one code point. */
  private escape(): Test | number {
    const t = this.text;
    const e = t[this.at];
    if (e === undefined) throw this.error('bad escape (end of pattern)');
    this.at++;
    if (e in CLASSES) return CLASSES[e];
    if (e in CONTROLS) return CONTROLS[e];
    const hex = { x: 2, u: 4, U: 8 }[e];
    if (hex !== undefined) {
      const digits = t.slice(this.at, this.at + hex);
      if (digits.length !== hex || !/^[0-9a-fA-F]+$/.test(digits)) throw this.error(`bad escape \\${e}`);
      this.at += hex;
      const code = parseInt(digits, 16);
      if (code > 0x10ffff) throw this.error(`bad escape \\${e}${digits}`);
      return code;
    }
    if (e === '0') {
      const octal = /[0-7]{0,2}/y;
      octal.lastIndex = this.at;
      const digits = octal.exec(t)![0];
      this.at += digits.length;
      return parseInt(`0${digits}`, 8);
    }
    if (/[1-9]/.test(e)) throw this.error('backreferences are not supported');
    if (/[A-Za-z]/.test(e)) throw this.error(`bad escape \\${e}`);
    const code = t.codePointAt(this.at - 1)!;
    if (code > 0xffff) this.at++;
    return code;
  }

  /** `[…]` from its opening bracket: ranges, escapes, class escapes, negation. */
  private characterClass(): Test {
    const t = this.text;
    this.at++;
    const negated = t[this.at] === '^';
    if (negated) this.at++;
    const tests: Test[] = [];
    const ranges: [number, number][] = [];
    const item = (): Test | number => {
      if (t[this.at] === '\\') {
        this.at++;
        if (t[this.at] === 'b') {
          this.at++;
          return 8;
        }
        return this.escape();
      }
      const code = t.codePointAt(this.at)!;
      this.at += code > 0xffff ? 2 : 1;
      return code;
    };
    let first = true;
    while (true) {
      if (this.at >= t.length) throw this.error('unterminated character set');
      if (t[this.at] === ']' && !first) break;
      first = false;
      const low = item();
      if (typeof low !== 'number') {
        tests.push(low);
        continue;
      }
      if (t[this.at] === '-' && t[this.at + 1] !== ']' && this.at + 1 < t.length) {
        this.at++;
        const high = item();
        if (typeof high !== 'number' || high < low) throw this.error('bad character range');
        ranges.push([low, high]);
      } else ranges.push([low, low]);
    }
    this.at++;
    return (c) => negated !== (ranges.some(([lo, hi]) => c >= lo && c <= hi) || tests.some((test) => test(c)));
  }
}

/** The NFA program of a parsed pattern, ending in Match; past {@link MAX_PROGRAM} instructions, `fail`. */
function emit(root: Node, fail: (message: string) => AlmoraError): Instruction[] {
  const program: Instruction[] = [];
  const push = (ins: Instruction): number => {
    if (program.length >= MAX_PROGRAM) throw fail(`pattern compiles to more than ${MAX_PROGRAM} instructions`);
    return program.push(ins) - 1;
  };
  const split = () => push({ op: Op.Split, x: 0, y: 0 }) as number;
  const patch = (at: number, x: number, y: number) => (program[at] = { op: Op.Split, x, y });
  const node = (n: Node): void => {
    if (n.kind === 'char') push({ op: Op.Char, test: n.test });
    else if (n.kind === 'assert') push({ op: Op.Assert, at: n.at });
    else if (n.kind === 'seq') n.items.forEach(node);
    else if (n.kind === 'alt') {
      const jumps: number[] = [];
      n.options.forEach((option, i) => {
        const last = i === n.options.length - 1;
        const s = last ? -1 : split();
        node(option);
        if (!last) {
          jumps.push(push({ op: Op.Jump, x: 0 }));
          patch(s, s + 1, program.length);
        }
      });
      for (const j of jumps) program[j] = { op: Op.Jump, x: program.length };
    } else {
      for (let k = 0; k < n.min; k++) node(n.node);
      if (n.max === Infinity) {
        const s = split();
        node(n.node);
        push({ op: Op.Jump, x: s });
        patch(s, s + 1, program.length);
      } else {
        const optional: number[] = [];
        for (let k = n.min; k < n.max; k++) {
          optional.push(split());
          node(n.node);
        }
        for (const s of optional) patch(s, s + 1, program.length);
      }
    }
  };
  node(root);
  push({ op: Op.Match });
  return program;
}
