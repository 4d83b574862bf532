// A unified diff of two texts, line by line (longest common subsequence), with three lines of
// context around each change: what `diff -u` prints, enough for a reader to see what changed.

/** The unified diff from `before` (named `from`) to `after` (named `to`); '' when they are equal. */
export function unifiedDiff(before, after, from, to, context = 3) {
  if (before === after) return '';
  const ops = editScript(splitLines(before), splitLines(after));
  const changed = ops.flatMap((op, index) => (op.kind === ' ' ? [] : [index]));
  const lines = [`--- ${from}`, `+++ ${to}`];
  let first = 0;
  while (first < changed.length) {
    let last = first;
    while (last + 1 < changed.length && changed[last + 1] - changed[last] <= 2 * context + 1) last++;
    const start = Math.max(0, changed[first] - context);
    const end = Math.min(ops.length, changed[last] + context + 1);
    const hunk = ops.slice(start, end);
    const oldCount = hunk.filter((op) => op.kind !== '+').length;
    const newCount = hunk.filter((op) => op.kind !== '-').length;
    const oldStart = ops[start].oldLine + (oldCount > 0 ? 1 : 0);
    const newStart = ops[start].newLine + (newCount > 0 ? 1 : 0);
    lines.push(`@@ -${oldStart},${oldCount} +${newStart},${newCount} @@`, ...hunk.map((op) => op.kind + op.text));
    first = last + 1;
  }
  if (changed.length === 0) lines.push('(the texts differ only in their final newline)');
  return `${lines.join('\n')}\n`;
}

function splitLines(text) {
  return text === '' ? [] : text.replace(/\n$/, '').split('\n');
}

/** Each line of `a` kept (' '), removed ('-') or of `b` added ('+'), with the lines of each side before it. */
function editScript(a, b) {
  // common[i][j]: length of the longest common subsequence of a[i..] and b[j..].
  const common = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      common[i][j] = a[i] === b[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const ops = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const at = { oldLine: i, newLine: j };
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push({ ...at, kind: ' ', text: a[i] });
      i++;
      j++;
    } else if (i < a.length && (j === b.length || common[i + 1][j] >= common[i][j + 1])) {
      ops.push({ ...at, kind: '-', text: a[i] });
      i++;
    } else {
      ops.push({ ...at, kind: '+', text: b[j] });
      j++;
    }
  }
  return ops;
}
