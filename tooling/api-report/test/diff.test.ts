import { describe, expect, it } from 'vitest';
import { unifiedDiff } from '../src/diff.js';

describe('unifiedDiff', () => {
  const lines = Array.from({ length: 20 }, (_, i) => `line ${i}`);
  const before = `${lines.join('\n')}\n`;

  it('is empty for equal texts', () => {
    expect(unifiedDiff(before, before, 'a', 'b')).toBe('');
  });

  it('prints each change with three lines of context and the line numbers of both sides, as diff -u does', () => {
    const after = `${lines
      .map((line, i) => (i === 1 ? 'line one' : line))
      .filter((_, i) => i !== 15)
      .join('\n')}\n`;
    expect(unifiedDiff(before, after, 'a', 'b')).toBe(
      [
        '--- a',
        '+++ b',
        '@@ -1,5 +1,5 @@',
        ' line 0',
        '-line 1',
        '+line one',
        ' line 2',
        ' line 3',
        ' line 4',
        '@@ -13,7 +13,6 @@',
        ' line 12',
        ' line 13',
        ' line 14',
        '-line 15',
        ' line 16',
        ' line 17',
        ' line 18',
        '',
      ].join('\n'),
    );
  });

  it('numbers an insertion into an empty text from line 0', () => {
    expect(unifiedDiff('', 'x\n', 'a', 'b')).toBe('--- a\n+++ b\n@@ -0,0 +1,1 @@\n+x\n');
  });
});
