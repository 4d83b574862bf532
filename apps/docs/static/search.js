// The site's search: every page's title and text, indexed at build time (assets/search-index.json),
// searched here in the browser. A page matches when it contains every word of the query; titles
// count more than text.
const input = document.querySelector('#search-query');
const status = document.querySelector('#search-status');
const list = document.querySelector('#search-results');

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

function occurrences(haystack, needle) {
  let count = 0;
  for (let at = haystack.indexOf(needle); at >= 0 && count < 50; at = haystack.indexOf(needle, at + needle.length)) count++;
  return count;
}

/** The text around the first match, with every term marked. */
function snippet(text, terms) {
  const lower = text.toLowerCase();
  const first = Math.max(0, lower.indexOf(terms[0]));
  const start = Math.max(0, first - 80);
  let shown = escapeHtml(text.slice(start, start + 220));
  for (const term of terms) shown = shown.replace(new RegExp(term.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi'), (m) => `<mark>${m}</mark>`);
  return `${start > 0 ? '…' : ''}${shown}…`;
}

export function search(index, query) {
  const terms = query
    .toLowerCase()
    .split(/\s+/)
    .filter((t) => t.length > 0);
  if (terms.length === 0) return [];
  return index
    .map((entry) => {
      const [title, text] = [entry.title.toLowerCase(), entry.text.toLowerCase()];
      if (!terms.every((t) => title.includes(t) || text.includes(t))) return undefined;
      const score = terms.reduce((sum, t) => sum + (title.includes(t) ? 20 : 0) + Math.min(occurrences(text, t), 20), 0);
      return { entry, score };
    })
    .filter((hit) => hit !== undefined)
    .sort((a, b) => b.score - a.score)
    .slice(0, 30)
    .map(({ entry }) => ({ ...entry, snippet: snippet(entry.text, terms) }));
}

function show(index, query) {
  const hits = search(index, query);
  status.textContent =
    query.trim() === '' ? 'Type a word or two.' : `${hits.length === 30 ? '30+' : hits.length} result${hits.length === 1 ? '' : 's'} for “${query.trim()}”.`;
  list.innerHTML = hits.map((hit) => `<li><a href="${hit.url}">${escapeHtml(hit.title)}</a><p>${hit.snippet}</p></li>`).join('');
}

if (input) {
  input.value = new URLSearchParams(location.search).get('q') ?? '';
  const response = await fetch('assets/search-index.json');
  const index = await response.json();
  show(index, input.value);
  input.addEventListener('input', () => {
    history.replaceState(null, '', `?q=${encodeURIComponent(input.value)}`);
    show(index, input.value);
  });
}
