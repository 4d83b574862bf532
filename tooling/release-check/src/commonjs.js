// A README example (an ES module with top-level await) as CommonJS: what a user who writes
// `require` instead of `import` would run. Only the import forms the READMEs use are converted; any
// other form is refused by name rather than guessed at.

/**
 * `import … from '…';` at the start of a line, its clause possibly over several lines (never past a
 * quote or a semicolon, so never into the next statement); side-effect imports and a trailing
 * line comment too.
 */
const IMPORT = /^import\s+(?:([^'";]*?)\s+from\s+)?(['"])([^'"\n]+)\2;?[ \t]*(?:\/\/.*)?$/gm;

/**
 * Splits an example into its import statements and the rest. Each import gives its source text,
 * its specifier and its clause (`{ a, b as c }`, `* as ns`, empty for a side-effect import).
 */
export function splitImports(example) {
  const imports = [];
  const body = example.replace(IMPORT, (text, clause = '', _quote, specifier) => {
    imports.push({ text, clause: clause.trim(), specifier });
    return '';
  });
  return { imports, body: body.replace(/^\n+/, '') };
}

/** The `require` that does what one import does, or a thrown error for a form the READMEs do not use. */
function requireOf({ clause, specifier }) {
  const from = `require(${JSON.stringify(specifier)})`;
  if (clause === '') return `${from};`;
  const namespace = /^\*\s+as\s+([\w$]+)$/.exec(clause);
  if (namespace) return `const ${namespace[1]} = ${from};`;
  const named = /^\{([\s\S]*)\}$/.exec(clause);
  if (!named || clause.startsWith('type ')) throw new Error(`cannot convert \`import ${clause} from '${specifier}'\` to require`);
  const bindings = named[1]
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => part.replace(/^([\w$]+)\s+as\s+([\w$]+)$/, '$1: $2'));
  return `const { ${bindings.join(', ')} } = ${from};`;
}

/** The body inside an async function called at once, so that top-level `await` works; a rejection ends the process with status 1. */
function wrapped(body) {
  return `(async () => {\n${body.replace(/\s+$/, '')}\n})();\n`;
}

/** The example as a CommonJS script (.cjs): each import a `require`, the rest inside an async function. */
export function toCommonJs(example) {
  const { imports, body } = splitImports(example);
  return `'use strict';\n${imports.map(requireOf).join('\n')}\n${wrapped(body)}`;
}

/** The example as a CommonJS TypeScript file (.cts): the imports as written (TypeScript compiles them to `require`), the rest inside an async function. */
export function toCommonJsTypeScript(example) {
  const { imports, body } = splitImports(example);
  return `${imports.map((entry) => entry.text).join('\n')}\n${wrapped(body)}`;
}
