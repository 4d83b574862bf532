// The report of a small package's types (test/fixture): each kind of export printed as a user's
// code sees it, and only a change to that — not to a doc comment or a private member — changes it.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { exportedDeclarations } from '../src/report.js';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixture');

const EXPECTED = `class Counter {
    constructor(options?: CounterOptions);
    get value(): number;
    next(): number;
}

interface CounterOptions {
    start?: number;
}

// type-only export: no value at run time
// exported as CounterType
class Counter {
    constructor(options?: CounterOptions);
    get value(): number;
    next(): number;
}

const MAX_SIZE = 1024;

interface Shape {
    width: number;
    height: number;
}

type Size = [rows: number, cols: number];

function area(shape: Shape): number;

function grow(shape: Shape): Grown;

function scale(values: readonly number[], factor: number): number[];

// exported as times
function scale(values: readonly number[], factor: number): number[];

// Not exported, but named by the declarations above:

interface Grown extends Shape {
    grown: true;
}`;

describe('the report of a package', () => {
  const copies = mkdtempSync(path.join(os.tmpdir(), 'almora-api-report-'));
  afterAll(() => rmSync(copies, { recursive: true, force: true }));

  /** The report of a copy of the fixture with `from` replaced by `to` in `file`. */
  const reportAfter = (file: string, from: string, to: string): string => {
    const copy = mkdtempSync(path.join(copies, 'copy-'));
    cpSync(fixture, copy, { recursive: true });
    const text = readFileSync(path.join(copy, file), 'utf8');
    expect(text).toContain(from);
    writeFileSync(path.join(copy, file), text.replace(from, to));
    return exportedDeclarations(path.join(copy, 'index.d.ts')).join('\n\n');
  };

  it('prints every export, resolved through re-exports, sorted by name, without comments or private members', () => {
    expect(exportedDeclarations(path.join(fixture, 'index.d.ts')).join('\n\n')).toBe(EXPECTED);
  });

  it('changes when a parameter type changes, here or in a re-exported file', () => {
    const changed = reportAfter('index.d.ts', 'factor: number', 'factor: bigint');
    expect(changed).not.toBe(EXPECTED);
    expect(changed).toBe(EXPECTED.replaceAll('factor: number', 'factor: bigint'));
    expect(reportAfter('shapes.d.ts', 'area(shape: Shape)', 'area(shape: Readonly<Shape>)')).toBe(
      EXPECTED.replace('area(shape: Shape)', 'area(shape: Readonly<Shape>)'),
    );
  });

  it('changes when an unexported type the exports name changes', () => {
    expect(reportAfter('index.d.ts', 'grown: true;', 'grown: boolean;')).toBe(EXPECTED.replace('grown: true;', 'grown: boolean;'));
  });

  it('does not change when only a doc comment or a private member does', () => {
    expect(reportAfter('index.d.ts', 'Scales every element of `values` by `factor`.', 'Multiplies each value.')).toBe(EXPECTED);
    expect(reportAfter('shapes.d.ts', '/** Width times height. */', '/**\n * The area.\n * @example area({ width: 2, height: 3 })\n */')).toBe(EXPECTED);
    expect(reportAfter('index.d.ts', 'private readonly step;', 'private readonly step;\n    private reset;')).toBe(EXPECTED);
  });
});
