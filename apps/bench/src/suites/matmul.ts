import { matmul, randomNormal, Rng, toDType, type Matrix } from '@almora/tensor';
import { createWasmBackend, type WasmBackend, type WasmMatrix } from '@almora/wasm';
import { Matrix as MlMatrix } from 'ml-matrix';
import { medianTime, timeInterleaved, type Plot, type Recorded, type Row, type Suite, type SuiteContext, type SuiteReport } from '../harness.js';
import { seriesFrom } from '../series.js';
import { linePlot } from '@almora/cli-kit';
import { readAndDispose, useTfjs } from '../peers/tfjs.js';

const ALMORA_F64 = 'almora float64';
const ALMORA_F32 = 'almora float32';
const TFJS_CPU = 'tfjs-cpu float32';
const TFJS_WASM = 'tfjs-wasm float32';
const ML_MATRIX = 'ml-matrix float64';
const WASM_F64 = 'almora wasm float64';
const WASM_F32 = 'almora wasm float32';

/** A matmul on the wasm backend with its operands already in its memory, read back like tfjs's. */
function wasmProduct(backend: WasmBackend, a: WasmMatrix, b: WasmMatrix): () => void {
  return () => {
    const product = backend.matmul(a, b);
    backend.readSync(product);
    backend.dispose(product);
  };
}

function toNested(m: Matrix): number[][] {
  return m.toArray();
}

/** GFLOP/s against n, one series per method. */
function drawMatmulPlots({ rows }: Recorded): Plot[] {
  return [
    {
      name: 'gflops',
      svg: linePlot({
        title: 'matmul GFLOP/s vs n',
        xLabel: 'n (n×n · n×n)',
        yLabel: 'GFLOP/s',
        logX: true,
        series: seriesFrom(rows.map((r) => [String(r.method), [r.n as number, r.gflops as number]])),
      }),
    },
  ];
}

/** GFLOP/s of @almora/tensor's and @almora/wasm's matmul against tfjs (cpu, wasm) and ml-matrix on the same n×n inputs. */
export const matmulSuite: Suite = {
  name: 'matmul',
  title: 'Dense matmul throughput: @almora/tensor vs tfjs and ml-matrix',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const sizes = context.quick ? [64, 128] : [256, 512, 1024];
    const rows: Row[] = [];
    const rawTimings: Record<string, number[]> = {};
    const wasm = await createWasmBackend();
    context.progress.start('matmul', sizes.length);
    for (const n of sizes) {
      const rng = new Rng(context.seed + n);
      const a = randomNormal(n, n, rng);
      const b = randomNormal(n, n, rng);
      const a32 = toDType(a, 'float32');
      const b32 = toDType(b, 'float32');
      const mlA = new MlMatrix(toNested(a));
      const mlB = new MlMatrix(toNested(b));
      const tfCpu = await useTfjs('cpu');
      const cpuA = tfCpu.tensor2d(new Float32Array(a32.toFlat()), [n, n]);
      const cpuB = tfCpu.tensor2d(new Float32Array(b32.toFlat()), [n, n]);
      const cpuTimes = timeInterleaved([{ name: TFJS_CPU, run: () => readAndDispose(tfCpu.matMul(cpuA, cpuB)) }], context.repeats);
      const tfWasm = await useTfjs('wasm');
      const wasmA = tfWasm.tensor2d(new Float32Array(a32.toFlat()), [n, n]);
      const wasmB = tfWasm.tensor2d(new Float32Array(b32.toFlat()), [n, n]);
      const onWasm = [a, b, a32, b32].map((m) => wasm.upload(m));
      // tfjs can only have one active backend, so its cpu run is timed just before the interleaved
      // group; the others alternate repeat by repeat.
      const times = timeInterleaved(
        [
          { name: ALMORA_F64, run: () => matmul(a, b) },
          { name: ALMORA_F32, run: () => matmul(a32, b32) },
          { name: TFJS_WASM, run: () => readAndDispose(tfWasm.matMul(wasmA, wasmB)) },
          { name: ML_MATRIX, run: () => mlA.mmul(mlB) },
          { name: WASM_F64, run: wasmProduct(wasm, onWasm[0], onWasm[1]) },
          { name: WASM_F32, run: wasmProduct(wasm, onWasm[2], onWasm[3]) },
        ],
        context.repeats,
      );
      times.set(TFJS_CPU, cpuTimes.get(TFJS_CPU)!);
      tfWasm.dispose([wasmA, wasmB]);
      for (const m of onWasm) wasm.dispose(m);
      for (const method of [ALMORA_F64, ALMORA_F32, WASM_F64, WASM_F32, TFJS_CPU, TFJS_WASM, ML_MATRIX]) {
        const seconds = medianTime(times, method);
        const rate = (2 * n ** 3) / seconds / 1e9;
        rows.push({ n, method, seconds, gflops: rate });
        rawTimings[`${method} n=${n}`] = times.get(method)!;
      }
      (await useTfjs('cpu')).dispose([cpuA, cpuB]);
      context.progress.tick(`n=${n}`);
    }
    context.progress.finish();
    wasm.close();
    const largest = sizes[sizes.length - 1];
    const at = (method: string) => rows.find((r) => r.n === largest && r.method === method)!.gflops as number;
    const ratio = (x: string, y: string) => `${(at(x) / at(y)).toFixed(2)}×`;
    const findings = [
      `At n=${largest}: almora float64 ${at(ALMORA_F64).toFixed(2)} GFLOP/s, float32 ${at(ALMORA_F32).toFixed(2)} GFLOP/s.`,
      `almora float64 / tfjs-cpu: ${ratio(ALMORA_F64, TFJS_CPU)}; almora float32 / tfjs-cpu: ${ratio(ALMORA_F32, TFJS_CPU)} (goal ≥ 2×).`,
      `almora float32 / tfjs-wasm: ${ratio(ALMORA_F32, TFJS_WASM)} (tfjs-wasm uses WebAssembly SIMD; plain JavaScript cannot).`,
      `almora float64 / ml-matrix: ${ratio(ALMORA_F64, ML_MATRIX)}.`,
      `@almora/wasm (${wasm.name}) at n=${largest}: float64 ${at(WASM_F64).toFixed(2)} GFLOP/s = ${ratio(WASM_F64, ALMORA_F64)} almora's JavaScript float64 (goal ≥ 3×); float32 ${at(WASM_F32).toFixed(2)} GFLOP/s = ${ratio(WASM_F32, TFJS_WASM)} tfjs-wasm's (goal ≥ 1×).`,
    ];
    const recorded: Recorded = { parameters: { sizes, repeats: context.repeats, seed: context.seed }, rows, rawTimings };
    return {
      suite: 'matmul',
      title: matmulSuite.title,
      ...recorded,
      findings,
      notes: [
        'Every method multiplies the same seeded n×n normal matrices; times are medians of interleaved repeats and include reading the result back.',
        `almora wasm rows: @almora/wasm with its operands already in its memory (as tfjs's tensors are), ${wasm.name}; the JavaScript rows run on one thread.`,
      ],
      plots: drawMatmulPlots(recorded),
    };
  },
  drawPlots: drawMatmulPlots,
};
