// The API report of a package (#16): every name its types entry exports, resolved through
// re-exports by the TypeScript checker, each printed as the declaration a user's code can depend
// on — without doc comments, `declare`/`export` modifiers or private class members, sorted by name —
// so the report changes only when the public surface does.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { unifiedDiff } from './diff.js';

const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed });
const COMPILER_OPTIONS = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  types: [],
  noLib: true,
  noEmit: true,
  skipLibCheck: true,
};

/** Modifiers that say where a declaration lives, not what it is. */
const DROPPED_MODIFIERS = new Set([ts.SyntaxKind.ExportKeyword, ts.SyntaxKind.DeclareKeyword, ts.SyntaxKind.DefaultKeyword]);

/**
 * The declarations `typesFile` exports, one block of text per exported name, sorted by name; then
 * those of the package's own types its exports name without exporting them (a user's code sees
 * their shape but cannot import them), after a comment that says so.
 */
export function exportedDeclarations(typesFile) {
  const program = ts.createProgram([typesFile], COMPILER_OPTIONS);
  const source = program.getSourceFile(typesFile);
  if (!source) throw new Error(`api-report: cannot read ${typesFile}`);
  const checker = program.getTypeChecker();
  const exported = [];
  collect(checker, checker.getSymbolAtLocation(source), '', exported);
  const unexported = referencedUnexported(checker, exported, path.dirname(path.resolve(typesFile)));
  const blocks = (entries) => entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((entry) => entry.text);
  if (unexported.length === 0) return blocks(exported);
  return [...blocks(exported), ['// Not exported, but named by the declarations above:', ...blocks(unexported)].join('\n\n')];
}

/** Adds `{ name, symbol, declarations, text }` for each export of `moduleSymbol` (a namespace re-export's names get its prefix). */
function collect(checker, moduleSymbol, prefix, entries) {
  if (!moduleSymbol) return;
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const name = prefix + exported.name;
    const symbol = resolve(checker, exported);
    const declarations = symbol.declarations ?? [];
    if (declarations.some(ts.isSourceFile)) {
      collect(checker, symbol, `${name}.`, entries);
      continue;
    }
    const notes = [];
    if (typeOnly(exported) && symbol.flags & ts.SymbolFlags.Value) notes.push('// type-only export: no value at run time');
    const declared = declarations.map((d) => d.name && ts.isIdentifier(d.name) && d.name.text).find(Boolean);
    if (declared && declared !== name) notes.push(`// exported as ${name}`);
    entries.push({ name, symbol, declarations, text: [...notes, ...declarations.map(print)].join('\n') });
  }
}

/**
 * The types declared in `dir` (the package's own, not its dependencies') that `entries` name,
 * directly or through each other, and that are not exported, as entries like `collect`'s.
 */
function referencedUnexported(checker, entries, dir) {
  const seen = new Set(entries.map((entry) => entry.symbol));
  const found = [];
  const visit = (node) => {
    if (isPrivate(node)) return;
    const name = ts.isTypeReferenceNode(node)
      ? node.typeName
      : ts.isExpressionWithTypeArguments(node)
        ? node.expression
        : ts.isTypeQueryNode(node)
          ? node.exprName
          : undefined;
    const symbol = name && checker.getSymbolAtLocation(name);
    if (symbol) {
      const target = resolve(checker, symbol);
      const declarations = (target.declarations ?? []).filter((d) => !ts.isTypeParameterDeclaration(d));
      const own = declarations.length > 0 && declarations.every((d) => isUnder(d.getSourceFile().fileName, dir));
      if (own && !seen.has(target)) {
        seen.add(target);
        const entry = { name: target.name, symbol: target, declarations, text: declarations.map(print).join('\n') };
        found.push(entry);
        entry.declarations.forEach(visit);
      }
    }
    ts.forEachChild(node, visit);
  };
  for (const entry of entries) entry.declarations.forEach(visit);
  return found;
}

function resolve(checker, symbol) {
  return symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
}

function isUnder(file, dir) {
  const relative = path.relative(dir, path.resolve(file));
  return !relative.startsWith('..') && !path.isAbsolute(relative) && !relative.split(path.sep).includes('node_modules');
}

/** Whether the export statement that binds `symbol` is `export type`. */
function typeOnly(symbol) {
  return (symbol.declarations ?? []).some((d) => ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly));
}

/** One declaration as text, without comments, location modifiers or private members. */
function print(declaration) {
  const [clean] = ts.transform(declaration, [strip]).transformed;
  const text = printer.printNode(ts.EmitHint.Unspecified, clean, declaration.getSourceFile());
  return ts.isVariableDeclaration(declaration) ? `${keyword(declaration.parent)} ${text};` : text;
}

/** `const`, `let` or `var`, as the declaration list says. */
function keyword(list) {
  return list.flags & ts.NodeFlags.Const ? 'const' : list.flags & ts.NodeFlags.Let ? 'let' : 'var';
}

/** A transformer that drops location modifiers from the top node and private members from classes. */
function strip(context) {
  return (top) => {
    const visit = (node) => {
      if (ts.isTupleTypeNode(node)) ts.setEmitFlags(node, ts.EmitFlags.SingleLine);
      if (isPrivate(node)) return undefined;
      return ts.visitEachChild(node, visit, context);
    };
    const modifiers = ts.canHaveModifiers(top) ? ts.getModifiers(top)?.filter((m) => !DROPPED_MODIFIERS.has(m.kind)) : undefined;
    const bare = modifiers ? context.factory.replaceModifiers(top, modifiers) : top;
    return ts.visitEachChild(bare, visit, context);
  };
}

/** A class member marked `private` or named `#…`: not part of what a user's code can call. */
function isPrivate(node) {
  if (!ts.isClassElement(node)) return false;
  if (node.name && ts.isPrivateIdentifier(node.name)) return true;
  return ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.PrivateKeyword);
}

/** The committed report of the package in `dir`: a heading, a line on how it is made, and the declarations. */
export function apiReport(dir) {
  const manifest = readManifest(dir);
  const typesFile = path.join(dir, manifest.types ?? 'dist/index.d.ts');
  if (!existsSync(typesFile)) throw new Error(`api-report: ${typesFile} does not exist; build ${manifest.name} first`);
  return [
    `# ${manifest.name} API report`,
    '',
    `Every name \`${manifest.name}\` exports, with its full declaration (from \`${manifest.types ?? 'dist/index.d.ts'}\`, doc comments and private members left out), sorted by name.`,
    'Made by `pnpm api-report`; `pnpm test` fails while it differs from the built types, so a change here is a change to the public API.',
    '',
    '```ts',
    exportedDeclarations(typesFile).join('\n\n'),
    '```',
    '',
  ].join('\n');
}

/** Where a package's report is committed. */
export function reportFile(dir) {
  return path.join(dir, 'api-report.md');
}

/**
 * How the committed report of the package in `dir` differs from its API now: a unified diff from
 * the committed file to the regenerated report ('' when they agree), and the regenerated report.
 */
export function compareReport(dir, root) {
  const file = reportFile(dir);
  const report = apiReport(dir);
  const committed = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const name = path.relative(root, file).split(path.sep).join('/');
  return { file, report, diff: unifiedDiff(committed, report, `${name} (committed)`, `${name} (regenerated)`) };
}

/** Every package under `root`/packages that is not private, as `{ name, dir }`, sorted by folder. */
export function publicPackages(root) {
  const packages = path.join(root, 'packages');
  return readdirSync(packages)
    .sort()
    .map((folder) => path.join(packages, folder))
    .filter((dir) => existsSync(path.join(dir, 'package.json')) && !readManifest(dir).private)
    .map((dir) => ({ name: readManifest(dir).name, dir }));
}

function readManifest(dir) {
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
}
