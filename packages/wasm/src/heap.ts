import { BackendError } from '@almora/tensor';

const PAGE = 65_536;
/** Every block starts on a 16-byte boundary, so v128 loads are aligned. */
const ALIGN = 16;
/** wasm32 addresses at most 4 GiB: 65,536 pages. */
const MAX_PAGES = 65_536;

/**
 * Memory for matrices inside the kernels' linear memory: blocks handed out from a bump pointer
 * and reused by size once released (the algorithms allocate the same block shapes over and over),
 * growing the memory a page at a time when it runs out. The kernels allocate nothing themselves.
 */
export class Heap {
  private top: number;
  private readonly free = new Map<number, number[]>();
  /** Bytes handed out and not yet released. */
  used = 0;

  constructor(
    readonly memory: WebAssembly.Memory,
    base: number,
  ) {
    this.top = Math.ceil(base / ALIGN) * ALIGN;
  }

  /** A block of at least `bytes` bytes, 16-byte aligned; its contents are whatever was there. */
  allocate(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    const reused = this.free.get(size)?.pop();
    this.used += size;
    if (reused !== undefined) return reused;
    const pointer = this.top;
    const end = pointer + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      const current = have / PAGE;
      try {
        if (current + pages > MAX_PAGES) throw new RangeError('past 65,536 pages');
        this.memory.grow(pages);
      } catch (error) {
        this.used -= size;
        throw new BackendError(
          `the wasm backend ran out of memory: ${(end / 2 ** 30).toFixed(2)} GiB needed (${error instanceof Error ? error.message : String(error)}); WebAssembly (wasm32) addresses at most 4 GiB — release handles, use smaller blocks or float32`,
        );
      }
    }
    this.top = end;
    return pointer;
  }

  /** Gives a block back for reuse by the next allocation of its size. */
  release(pointer: number, bytes: number): void {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    this.used -= size;
    const list = this.free.get(size);
    if (list) list.push(pointer);
    else this.free.set(size, [pointer]);
  }

  /** A fresh view of `count` float64 at `pointer` (views are remade: the buffer changes as memory grows). */
  f64(pointer: number, count: number): Float64Array {
    return new Float64Array(this.memory.buffer, pointer, count);
  }

  /** A fresh view of `count` float32 at `pointer`. */
  f32(pointer: number, count: number): Float32Array {
    return new Float32Array(this.memory.buffer, pointer, count);
  }

  /** A fresh view of `count` int32 at `pointer`. */
  i32(pointer: number, count: number): Int32Array {
    return new Int32Array(this.memory.buffer, pointer, count);
  }
}
