import { availableGpuModes, createGpuBackend } from '@almora/gpu';
import { cpuBackend } from '@almora/kernels';
import { cpuCore } from '@almora/tensor';
import { createWasmBackend } from '@almora/wasm';
import { measureInChromium } from '../backends/chromium.js';
import { type BackendCase, type BackendMeasurement, type BackendSizes, measureBackends } from '../backends/measure.js';
import type { Row, Suite, SuiteContext, SuiteReport } from '../harness.js';
import { median } from '../stats.js';

const CPU64 = 'almora cpu float64';

/**
 * The same kernels and full gradients on every backend that runs here: the CPU backend in float64
 * and float32, the CPU's core alone (the fused kernels' default compositions), gpu.js in each mode Node offers (cpu, webasm, headlessgl where built) and in
 * WebGPU/WebGL2/WebGL inside headless Chromium; time (compute + read-back) and deviation from float64.
 */
export const backendsSuite: Suite = {
  name: 'backends',
  title: 'Backends: the same kernels and gradients on every backend',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const sizes: BackendSizes = context.quick
      ? { matmul: 128, length: 512, gradientLength: 256, d: 16 }
      : { matmul: 512, length: 4096, gradientLength: 2048, d: 16 };
    const notes: string[] = [];
    const wasm = await createWasmBackend();
    const wasmSingle = await createWasmBackend({ threads: 1 });
    const cases: BackendCase[] = [
      { label: CPU64, backend: cpuBackend, dtype: 'float64' },
      { label: 'almora cpu float32', backend: cpuBackend, dtype: 'float32' },
      // The CPU's core alone: every fused kernel is its default composition, beside the CPU's override.
      { label: 'almora cpu core (default compositions) float64', backend: cpuCore, dtype: 'float64' },
      { label: `almora ${wasm.name} float64`, backend: wasm, dtype: 'float64' },
      { label: `almora ${wasm.name} float32`, backend: wasm, dtype: 'float32' },
      { label: `almora ${wasmSingle.name} float64`, backend: wasmSingle, dtype: 'float64' },
      ...availableGpuModes().map((mode) => ({ label: `gpu.js ${mode} (Node)`, backend: createGpuBackend({ mode }), dtype: 'float64' as const })),
    ];
    notes.push(
      availableGpuModes().includes('headlessgl')
        ? "gpu.js headlessgl ran: the optional 'gl' package was built and an X display was present (e.g. under xvfb-run)"
        : "gpu.js headlessgl: not available in Node here (the optional 'gl' package is not built, or there is no X display)",
    );
    context.progress.start('backends', 7);
    const measured: BackendMeasurement[] = await measureBackends(cases, sizes, context.repeats, context.seed, (w) => context.progress.tick(`Node: ${w}`));
    wasm.close();
    wasmSingle.close();
    const browser = await measureInChromium(sizes, context.repeats, context.seed, context.browserFlags);
    if (typeof browser === 'string') notes.push(browser);
    else {
      measured.push(...browser.measurements);
      notes.push(
        `Chromium's WebGL renderer: ${browser.renderer}${/swiftshader/i.test(browser.renderer) ? ' (a software renderer: correctness here, speed only on a real GPU)' : ''}`,
        ...browser.skipped,
      );
    }
    context.progress.tick('Chromium');

    const rows: Row[] = measured.map((m) => ({ work: m.work, backend: m.backend, seconds: median(m.seconds), deviation: m.deviation }));
    const rawTimings = Object.fromEntries(measured.map((m) => [`${m.backend} | ${m.work}`, m.seconds]));
    const findings: string[] = [];
    for (const work of [...new Set(rows.map((r) => r.work as string))]) {
      const of = rows.filter((r) => r.work === work);
      const base = of.find((r) => r.backend === CPU64)!.seconds as number;
      const others = of.filter((r) => r.backend !== CPU64);
      const worst = others.reduce((w, r) => ((r.deviation as number) > (w.deviation as number) ? r : w), others[0]);
      findings.push(
        `${work}: ${others.map((r) => `${r.backend} ${(base / (r.seconds as number)).toFixed(2)}×`).join(', ')} the speed of ${CPU64}; largest deviation ${(worst.deviation as number).toExponential(1)} (${worst.backend}).`,
      );
    }
    notes.push(
      'Times are medians of compute plus read-back with inputs already on the device (uploads not counted), one warm-up run each (it compiles the GPU kernels); backends are interleaved repeat by repeat. Deviation is max|x − x₆₄|/max|x₆₄| against the CPU backend in float64.',
    );
    return {
      suite: 'backends',
      title: this.title,
      parameters: { ...sizes, queryBlock: 128, degree: 2, rank: 4, gamma: 0.5, backends: [...new Set(rows.map((r) => r.backend as string))] },
      rows,
      rawTimings,
      findings,
      notes,
      plots: [],
    };
  },
};
