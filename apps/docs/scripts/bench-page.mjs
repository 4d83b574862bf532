// How the site shows a committed bench summary (apps/bench/results/*.md).

/**
 * A bench summary reordered for a reader: what was measured and how to rerun it, then the plots,
 * the findings, the issue targets they were checked against, the notes and the raw table. (The
 * bench writes its summary for review, targets first.)
 */
export function readerFirst(source) {
  const lines = source.split('\n');
  const sections = new Map();
  let current = 'header';
  for (const line of lines) {
    const heading = /^## (.+)$/.exec(line);
    if (heading) current = heading[1];
    else if (/^!\[[^\]]*\]\([^)]+\.svg\)$/.test(line.trim())) {
      sections.set('plots', [...(sections.get('plots') ?? []), line, '']);
      continue;
    }
    sections.set(current, [...(sections.get(current) ?? []), ...(heading ? [] : [line])]);
  }
  const text = (name) => (sections.get(name) ?? []).join('\n').trim();
  const findings = (sections.get('Findings') ?? []).filter((l) => l.trim() !== '');
  const targets = findings.filter((l) => l.startsWith('- Goal: ')).map((l) => `- ${l.slice('- Goal: '.length)}`);
  const rest = findings.filter((l) => !l.startsWith('- Goal: '));
  const known = new Set(['header', 'plots', 'Findings']);
  const others = [...sections.keys()].filter((name) => !known.has(name)).map((name) => `## ${name}\n\n${text(name)}`);
  return [
    text('header'),
    sections.has('plots') ? text('plots') : '',
    rest.length > 0 ? `## Findings\n\n${rest.join('\n')}` : '',
    targets.length > 0 ? `## Targets checked\n\nThe goals the issues set for this benchmark, each checked against this run.\n\n${targets.join('\n')}` : '',
    ...others,
  ]
    .filter((part) => part !== '')
    .join('\n\n');
}
