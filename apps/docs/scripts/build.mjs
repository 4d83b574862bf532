/* global console, process */
// Builds the site into dist/: pages from content/*.md (math rendered by KaTeX at build time), the
// API reference from the packages' TSDoc (TypeDoc), the committed bench summaries, and the
// explorer bundled from src/ against the workspace packages.
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import katex from 'katex';
import { Marked } from 'marked';
import { Application } from 'typedoc';
import { readerFirst } from './bench-page.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const repo = path.resolve(root, '..', '..');
const dist = path.join(root, 'dist');
const results = path.join(repo, 'apps', 'bench', 'results');

/** Site navigation: path (relative to the site root) and label. */
const NAV = [
  ['index.html', 'Getting started'],
  ['install.html', 'Install'],
  ['guide.html', 'Guide'],
  ['cli.html', 'CLI'],
  ['peft.html', 'PEFT'],
  ['concepts.html', 'Concepts'],
  ['explorer.html', 'Explorer'],
  ['benchmarks/index.html', 'Benchmarks'],
  ['api/index.html', 'API'],
];

/** [results file, label, the bench command that makes it]. */
const BENCHMARKS = [
  ['scaling', 'Scaling', 'scaling'],
  ['scaling-wasm', 'Scaling on WebAssembly, beside numpy', 'scaling --backend wasm'],
  ['phase', 'Phase transition', 'phase'],
  ['backends', 'Backends', 'backends'],
  ['matmul', 'Matmul', 'matmul'],
  ['approx', 'Approximation', 'approx'],
  ['memory', 'Memory', 'memory'],
  ['memory-wasm', 'Memory on WebAssembly, to L = 1,048,576', 'memory --backend wasm'],
  ['hostile', 'Hostile inputs', 'hostile'],
  ['model', 'The model: LoRA fine-tuning on real text and the real-text phase diagram', 'model'],
  ['methods', 'LoRA methods and rank allocators against plain LoRA, at an equal budget', 'methods'],
];

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

/** Markdown to HTML with $…$ and $$…$$ rendered by KaTeX (kept out of marked's way first). */
function renderMarkdown(source) {
  const math = [];
  const protect = (tex, display) => {
    math.push(katex.renderToString(tex.trim(), { displayMode: display, throwOnError: true, output: 'htmlAndMathml' }));
    return `@@MATH${math.length - 1}@@`;
  };
  const fenced = [];
  const withoutCode = source.replace(/```[\s\S]*?```|`[^`\n]+`/g, (code) => {
    fenced.push(code);
    return `@@CODE${fenced.length - 1}@@`;
  });
  const withMath = withoutCode
    .replace(/\$\$([\s\S]+?)\$\$/g, (_, tex) => protect(tex, true))
    .replace(/\$([^$\n]+?)\$/g, (_, tex) => protect(tex, false))
    .replace(/@@CODE(\d+)@@/g, (_, i) => fenced[Number(i)]);
  const marked = new Marked({ gfm: true });
  const html = marked.parse(withMath, { async: false });
  // Wide tables scroll inside their own box on narrow screens instead of widening the page.
  return html
    .replace(/@@MATH(\d+)@@/g, (_, i) => math[Number(i)])
    .replace(/<table>/g, '<div class="table-scroll"><table>')
    .replace(/<\/table>/g, '</table></div>');
}

function page({ title, body, at, scripts = [] }) {
  const depth = at.split('/').length - 1;
  const up = '../'.repeat(depth);
  const nav = NAV.map(
    ([href, label]) =>
      `<a href="${up}${href}"${href === at || (href.startsWith('benchmarks/') && at.startsWith('benchmarks/')) ? ' aria-current="page"' : ''}>${label}</a>`,
  ).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(title)} — almora</title>
<link rel="icon" href="${up}assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="${up}assets/katex/katex.min.css">
<link rel="stylesheet" href="${up}assets/style.css">
</head>
<body>
<header class="site"><a class="brand" href="${up}index.html">almora</a><nav>${nav}</nav><form class="search" action="${up}search.html" role="search"><input name="q" type="search" placeholder="Search" aria-label="Search the site"></form></header>
<main>
${body}
</main>
<footer>almora implements Hu, Su, Kuo, Song, Liu, <a href="https://arxiv.org/abs/2406.03136">Computational Limits of Low-Rank Adaptation (LoRA) Fine-Tuning for Transformer Models</a> (ICLR 2025).</footer>
${scripts.map((s) => `<script type="module" src="${up}${s}"></script>`).join('\n')}
</body>
</html>
`;
}

/** Every page's title and text, for the site's search. */
const searchIndex = [];

/** A page's visible text: tags, scripts, styles and the site's navigation removed, whitespace collapsed. */
function plainText(html) {
  return html
    .replace(/<(script|style|header|footer|nav)\b[\s\S]*?<\/\1>/g, ' ')
    .replace(/<span class="katex-html"[\s\S]*?<\/span><\/span>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();
}

async function writePage(at, html) {
  const title = /<title>([^<]*) — almora<\/title>/.exec(html)?.[1];
  if (title) searchIndex.push({ url: at, title: title.replace(/&amp;/g, '&'), text: plainText(/<main>([\s\S]*)<\/main>/.exec(html)?.[1] ?? '') });
  const file = path.join(dist, at);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, html);
}

async function contentPages() {
  for (const name of await readdir(path.join(root, 'content'))) {
    if (!name.endsWith('.md')) continue;
    const source = await readFile(path.join(root, 'content', name), 'utf8');
    const title = /^# (.+)$/m.exec(source)?.[1] ?? name;
    const at = name.replace(/\.md$/, '.html');
    const scripts = at === 'explorer.html' ? ['assets/explorer.js'] : [];
    await writePage(at, page({ title, body: renderMarkdown(source), at, scripts }));
  }
}

/** The command-line reference, generated by apps/train from the option table its commands parse (CLI.md). */
async function cliPage() {
  const source = await readFile(path.join(repo, 'apps', 'train', 'CLI.md'), 'utf8');
  await writePage('cli.html', page({ title: 'Command-line reference', body: renderMarkdown(source), at: 'cli.html' }));
}

async function benchmarkPages() {
  const items = [];
  for (const [name, label, command] of BENCHMARKS) {
    let source;
    try {
      source = await readFile(path.join(results, `${name}.md`), 'utf8');
    } catch {
      items.push(`<li>${label}: no committed results yet (run <code>pnpm bench ${command}</code>).</li>`);
      continue;
    }
    const at = `benchmarks/${name}.html`;
    await writePage(at, page({ title: `${label} benchmark`, body: renderMarkdown(readerFirst(source)), at }));
    items.push(`<li><a href="${name}.html">${label}</a></li>`);
  }
  for (const file of await readdir(results)) if (file.endsWith('.svg')) await cp(path.join(results, file), path.join(dist, 'benchmarks', file));
  const intro = renderMarkdown(await readFile(path.join(root, 'content', 'benchmarks.md.part'), 'utf8'));
  await writePage('benchmarks/index.html', page({ title: 'Benchmarks', body: `${intro}<ul>${items.join('')}</ul>`, at: 'benchmarks/index.html' }));
}

async function apiReference() {
  const packages = ['tensor', 'kernels', 'lora', 'gpu', 'wasm', 'backends', 'model', 'peft'];
  const app = await Application.bootstrapWithPlugins({
    entryPoints: packages.map((p) => path.join(repo, 'packages', p, 'src', 'index.ts')),
    tsconfig: path.join(root, 'typedoc.tsconfig.json'),
    name: 'almora API',
    readme: 'none',
    excludePrivate: true,
    excludeInternal: true,
    githubPages: false,
    disableSources: true,
    hideGenerator: true,
    favicon: path.join(root, 'static', 'favicon.svg'),
    logLevel: 'Warn',
    validation: { notExported: true, invalidLink: true, notDocumented: true },
    packagesRequiringDocumentation: packages.map((p) => `@almora/${p}`),
    treatWarningsAsErrors: true,
  });
  const project = await app.convert();
  if (!project) throw new Error('TypeDoc could not convert the packages');
  // Every export and every property documented, every {@link} resolving: the API pages cannot
  // silently thin out.
  app.validate(project);
  if (app.logger.hasErrors() || app.logger.hasWarnings()) throw new Error('TypeDoc validation failed (see the messages above)');
  await app.generateDocs(project, path.join(dist, 'api'));
  await linkApiToSite(path.join(dist, 'api'));
}

/** Puts the site's navigation at the top of every API page, so a reader who lands there finds the guides. */
async function linkApiToSite(dir, depth = 1) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) await linkApiToSite(file, depth + 1);
    else if (entry.name.endsWith('.html')) {
      const up = '../'.repeat(depth);
      const links = NAV.map(([href, label]) => `<a href="${up}${href}" style="margin-right:1rem">${label}</a>`).join('');
      const bar = `<nav aria-label="almora site" style="padding:0.4rem 1rem;font:14px system-ui,sans-serif;border-bottom:1px solid #8884"><strong style="margin-right:1rem">almora</strong>${links}</nav>`;
      const html = await readFile(file, 'utf8');
      await writeFile(
        file,
        html.replace(/<body([^>]*)>/, (body) => `${body}${bar}`),
      );
      const title = /<title>([^<]*)<\/title>/.exec(html)?.[1];
      const main = /<div class="col-content">([\s\S]*?)<div class="col-sidebar">/.exec(html)?.[1] ?? '';
      if (title)
        searchIndex.push({
          url: path.relative(dist, file).split(path.sep).join('/'),
          title: `API: ${title.replace(/&amp;/g, '&').replace(/ \| almora API$/, '')}`,
          text: plainText(main).slice(0, 4000),
        });
    }
  }
}

async function searchPage() {
  const body = `<h1>Search</h1>
<form class="search-page" role="search" onsubmit="return false"><input id="search-query" name="q" type="search" aria-label="Search the site" autofocus></form>
<p class="status" id="search-status" role="status">Loading the index…</p>
<ol id="search-results" class="search-results"></ol>`;
  await writePage('search.html', page({ title: 'Search', body, at: 'search.html', scripts: ['assets/search.js'] }));
}

async function assets() {
  await mkdir(path.join(dist, 'assets'), { recursive: true });
  for (const file of ['style.css', 'favicon.svg', 'search.js']) await cp(path.join(root, 'static', file), path.join(dist, 'assets', file));
  const katexDist = path.join(path.dirname(fileURLToPath(import.meta.resolve('katex'))));
  await cp(path.join(katexDist, 'katex.min.css'), path.join(dist, 'assets', 'katex', 'katex.min.css'));
  await cp(path.join(katexDist, 'fonts'), path.join(dist, 'assets', 'katex', 'fonts'), { recursive: true });
  await build({
    entryPoints: { explorer: path.join(root, 'src', 'explorer', 'main.ts'), worker: path.join(root, 'src', 'explorer', 'worker.ts') },
    outdir: path.join(dist, 'assets'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    logLevel: 'warning',
  });
}

try {
  await rm(dist, { recursive: true, force: true });
  await mkdir(dist, { recursive: true });
  await Promise.all([contentPages(), cliPage(), benchmarkPages(), searchPage(), assets()]);
  await apiReference();
  // Search itself is not a result.
  await writeFile(path.join(dist, 'assets', 'search-index.json'), JSON.stringify(searchIndex.filter((entry) => entry.url !== 'search.html')));
  console.log(`site written to ${path.relative(process.cwd(), dist) || '.'}`);
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
