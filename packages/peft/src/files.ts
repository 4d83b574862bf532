/**
 * Adapter and model folders on disk (Node). Node's modules are imported by a name bundlers do not
 * follow, so a browser bundle of this package builds; there, use the in-memory encode and decode.
 */
import { AlmoraError } from '@almora/tensor';
import { ADAPTER_FILES, decodePeftAdapter, encodePeftAdapter, type PeftAdapter, type ReadAdapterOptions, type WriteAdapterOptions } from './adapter.js';
import { PeftError } from './errors.js';
import { isJsonObject, jsonKind, parseJson, type JsonObject } from './json.js';
import { decodeSafetensors, encodeSafetensors, type SafetensorsOptions, type SafetensorsTensor } from './safetensors.js';

type Fs = typeof import('node:fs/promises');

/** How files are written; the default writes a temporary file and renames it over the target. */
export type WriteFile = (file: string, data: string | Uint8Array) => Promise<void>;

/** Options of the folder writers. */
export interface FolderWriteOptions {
  /** Writes one file (e.g. an atomic writer that also fsyncs and refuses symlinks); default: temp file, then rename. */
  writeFile?: WriteFile;
}

async function nodeFs(): Promise<Fs> {
  const specifier = 'node:fs/promises';
  try {
    return (await import(/* @vite-ignore */ specifier)) as Fs;
  } catch {
    throw new PeftError('reading and writing folders needs Node; in a browser, use encodePeftAdapter and decodePeftAdapter');
  }
}

const join = (dir: string, name: string) => (dir.endsWith('/') || dir.endsWith('\\') ? `${dir}${name}` : `${dir}/${name}`);

async function readBytes(fs: Fs, file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await fs.readFile(file));
  } catch (error) {
    // The system error stays reachable as `cause`, so a command line can say it in words.
    throw Object.assign(new PeftError(`cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`), { cause: error });
  }
}

async function readJsonObject(fs: Fs, file: string): Promise<JsonObject> {
  const bytes = await readBytes(fs, file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PeftError(`${file} is not valid UTF-8`);
  }
  const json = parseJson(text, (message) => new PeftError(`${file} is not valid JSON: ${message}`));
  if (!isJsonObject(json)) throw new PeftError(`${file} must hold a JSON object, got ${jsonKind(json)}`);
  return json;
}

/** Writes the files into `dir` (created if need be) with `writeFile`, or temp file then rename. */
async function writeFiles(dir: string, files: [string, string | Uint8Array][], writeFile: WriteFile | undefined): Promise<void> {
  const fs = await nodeFs();
  await fs.mkdir(dir, { recursive: true });
  for (const [name, data] of files) {
    const file = join(dir, name);
    if (writeFile) {
      await writeFile(file, data);
      continue;
    }
    const temp = `${file}.tmp-${Math.random().toString(36).slice(2)}`;
    try {
      await fs.writeFile(temp, data, { flag: 'wx' });
      await fs.rename(temp, file);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
  }
}

/**
 * Reads a PEFT adapter folder (adapter_config.json, adapter_model.safetensors) as
 * {@link decodePeftAdapter} does; a missing file is a {@link PeftError} naming it, and every error
 * names the folder.
 */
export async function readPeftAdapter(dir: string, options: ReadAdapterOptions = {}): Promise<PeftAdapter> {
  const fs = await nodeFs();
  const config = await readBytes(fs, join(dir, ADAPTER_FILES.config));
  const weights = await readBytes(fs, join(dir, ADAPTER_FILES.weights));
  try {
    return decodePeftAdapter({ config, weights }, options);
  } catch (error) {
    // The errors name the file and the field; the folder goes in front.
    if (error instanceof AlmoraError) error.message = `${dir}: ${error.message}`;
    throw error;
  }
}

/** Writes a PEFT adapter folder, the two files {@link encodePeftAdapter} makes, creating `dir`. */
export async function writePeftAdapter(dir: string, adapter: PeftAdapter, options: WriteAdapterOptions & FolderWriteOptions = {}): Promise<void> {
  const files = encodePeftAdapter(adapter, options);
  await writeFiles(
    dir,
    [
      [ADAPTER_FILES.config, files.config],
      [ADAPTER_FILES.weights, files.weights],
    ],
    options.writeFile,
  );
}

/** A model folder in Hugging Face's layout: config.json and the state dict's tensors. */
export interface ModelFolder {
  /** config.json, parsed into null-prototype objects. */
  config: JsonObject;
  /** Every tensor of the state dict by key, in its torch shape. */
  tensors: Record<string, SafetensorsTensor>;
}

/** File names of a model folder, as transformers' `save_pretrained` writes them (one file, or shards with an index). */
export const MODEL_FILES = {
  /** The model's configuration (architectures, model_type, shapes, torch_dtype). */
  config: 'config.json',
  /** The state dict, when it is one file. */
  weights: 'model.safetensors',
  /** The shards' index (`weight_map`: tensor → shard file), when it is several. */
  index: 'model.safetensors.index.json',
} as const;

/** A model folder's config.json alone, parsed into null-prototype objects; a missing or broken file is a {@link PeftError}. */
export async function readModelConfig(dir: string): Promise<JsonObject> {
  return readJsonObject(await nodeFs(), join(dir, MODEL_FILES.config));
}

/**
 * Reads a model folder as transformers saves one: config.json and model.safetensors, or, when
 * that is absent, the shards model.safetensors.index.json lists (its weight_map: tensor → file;
 * each shard must hold exactly the tensors mapped to it, and a shard's name must be a plain file
 * name in the folder). Tensors are checked as `decodeSafetensors` says.
 */
export async function readModelFolder(dir: string, options: SafetensorsOptions = {}): Promise<ModelFolder> {
  const fs = await nodeFs();
  const config = await readModelConfig(dir);
  const single = join(dir, MODEL_FILES.weights);
  const exists = await fs.stat(single).then(
    () => true,
    () => false,
  );
  if (
    exists ||
    !(await fs.stat(join(dir, MODEL_FILES.index)).then(
      () => true,
      () => false,
    ))
  ) {
    return { config, tensors: decodeSafetensors(await readBytes(fs, single), options).tensors };
  }
  const indexFile = join(dir, MODEL_FILES.index);
  const map = (await readJsonObject(fs, indexFile)).weight_map;
  if (!isJsonObject(map) || Object.keys(map).length === 0) throw new PeftError(`${indexFile}: weight_map must be a non-empty object, got ${jsonKind(map)}`);
  const shards = new Map<string, Set<string>>();
  for (const key of Object.keys(map)) {
    const shard = map[key];
    if (typeof shard !== 'string' || !/^[^/\\]+\.safetensors$/.test(shard) || shard.startsWith('.'))
      throw new PeftError(`${indexFile}: weight_map[${JSON.stringify(key.slice(0, 80))}] must name a .safetensors file in the folder, got ${jsonKind(shard)}`);
    if (!shards.has(shard)) shards.set(shard, new Set());
    shards.get(shard)!.add(key);
  }
  const tensors = Object.create(null) as Record<string, SafetensorsTensor>;
  for (const [shard, keys] of shards) {
    const file = decodeSafetensors(await readBytes(fs, join(dir, shard)), options).tensors;
    const names = Object.keys(file);
    const stray = names.find((name) => !keys.has(name));
    if (stray !== undefined)
      throw new PeftError(`${join(dir, shard)} holds ${JSON.stringify(stray.slice(0, 200))}, which ${MODEL_FILES.index} maps elsewhere or not at all`);
    if (names.length !== keys.size)
      throw new PeftError(`${join(dir, shard)} lacks ${[...keys].find((k) => !Object.hasOwn(file, k))}, which ${MODEL_FILES.index} maps to it`);
    Object.assign(tensors, file);
  }
  return { config, tensors };
}

/**
 * Writes a model folder as transformers saves one: config.json (two-space indented) and
 * model.safetensors with `__metadata__` `{ format: 'pt' }`, which transformers requires. The
 * caller's config says what the model is (architectures, model_type, torch_dtype, …).
 */
export async function writeModelFolder(
  dir: string,
  model: { config: Readonly<Record<string, unknown>>; tensors: Readonly<Record<string, SafetensorsTensor>> },
  options: FolderWriteOptions & SafetensorsOptions = {},
): Promise<void> {
  const weights = encodeSafetensors({ tensors: { ...model.tensors }, metadata: { format: 'pt' } }, options);
  await writeFiles(
    dir,
    [
      [MODEL_FILES.config, `${JSON.stringify(model.config, null, 2)}\n`],
      [MODEL_FILES.weights, weights],
    ],
    options.writeFile,
  );
}
