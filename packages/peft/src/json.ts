import type { AlmoraError } from '@almora/tensor';

/** A parsed JSON value; objects have a null prototype, so no key (not even `__proto__`) is special. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

/** A parsed JSON object: a null-prototype record. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** Deeper than this is refused: no header or config PEFT writes nests past 4. */
const MAX_DEPTH = 64;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/**
 * Parses JSON text (RFC 8259) into null-prototype objects, refusing what a permissive parser would
 * let through silently: a key given twice (the safetensors format forbids duplicates; JSON.parse
 * keeps the last), nesting deeper than 64, and anything after the value but whitespace. Every
 * failure is `fail(message)` with the offset.
 */
export function parseJson(text: string, fail: (message: string) => AlmoraError): JsonValue {
  let at = 0;
  const error = (what: string) => fail(`${what} at offset ${at}`);
  const space = () => {
    for (let c = text.charCodeAt(at); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++at));
  };
  const string = (): string => {
    at++; // the opening quote
    let out = '';
    let from = at;
    while (true) {
      const c = text.charCodeAt(at);
      if (Number.isNaN(c)) throw error('unterminated string');
      if (c === 0x22) break;
      if (c < 0x20) throw error('control character in a string');
      if (c !== 0x5c) {
        at++;
        continue;
      }
      out += text.slice(from, at);
      const e = text[at + 1];
      if (e === 'u') {
        const hex = text.slice(at + 2, at + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw error('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        at += 6;
      } else if (e !== undefined && e in ESCAPES) {
        out += ESCAPES[e];
        at += 2;
      } else {
        throw error('bad escape');
      }
      from = at;
    }
    out += text.slice(from, at);
    at++; // the closing quote
    return out;
  };
  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) throw error(`nested deeper than ${MAX_DEPTH}`);
    space();
    const c = text[at];
    if (c === '{') {
      at++;
      const object = Object.create(null) as JsonObject;
      space();
      if (text[at] === '}') {
        at++;
        return object;
      }
      while (true) {
        space();
        if (text[at] !== '"') throw error('expected a string key');
        const key = string();
        if (Object.hasOwn(object, key)) throw error(`the key ${JSON.stringify(key.slice(0, 80))} appears twice`);
        space();
        if (text[at] !== ':') throw error("expected ':'");
        at++;
        object[key] = value(depth + 1);
        space();
        if (text[at] === ',') at++;
        else if (text[at] === '}') {
          at++;
          return object;
        } else throw error("expected ',' or '}'");
      }
    }
    if (c === '[') {
      at++;
      const list: JsonValue[] = [];
      space();
      if (text[at] === ']') {
        at++;
        return list;
      }
      while (true) {
        list.push(value(depth + 1));
        space();
        if (text[at] === ',') at++;
        else if (text[at] === ']') {
          at++;
          return list;
        } else throw error("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, literal] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return literal;
      }
    }
    NUMBER.lastIndex = at;
    const number = NUMBER.exec(text);
    if (!number) throw error(c === undefined ? 'unexpected end' : `unexpected ${JSON.stringify(c)}`);
    at += number[0].length;
    // 1e999 is Infinity, as Python's json reads it; the callers refuse non-finite fields.
    return Number(number[0]);
  };
  const result = value(0);
  space();
  if (at !== text.length) throw error('text after the JSON value');
  return result;
}

/** Whether a parsed value is a JSON object (not a list, not null). */
export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What a JSON value is, for an error message: short, whatever the value's size or depth. */
export function jsonKind(value: JsonValue | undefined): string {
  if (value === undefined) return 'missing';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (isJsonObject(value)) return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)}`;
  return String(value);
}
