// The GPU-machine check, bundled into one file by scripts/gpu-check.sh: measures every backend
// this Node process can run (headlessgl first, on the machine's GPU when the GL stack reaches it)
// against the CPU in float64 and writes the summary where it is asked to.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { availableGpuModes, createGpuBackend } from '@almora/gpu';
import { cpuBackend } from '@almora/kernels';
import { median } from '../stats.js';
import { type BackendCase, measureBackends } from './measure.js';

const out = process.argv[2] ?? '.';
const quick = process.argv.includes('--quick');
const modes = availableGpuModes();
const cases: BackendCase[] = [
  { label: 'almora cpu float64', backend: cpuBackend, dtype: 'float64' },
  ...modes.filter((m) => m !== 'cpu').map((mode) => ({ label: `gpu.js ${mode}`, backend: createGpuBackend({ mode }), dtype: 'float64' as const })),
];
const sizes = quick ? { matmul: 256, length: 2048, gradientLength: 1024, d: 16 } : { matmul: 1024, length: 16384, gradientLength: 4096, d: 16 };
async function main(): Promise<void> {
  const started = Date.now();
  const results = await measureBackends(cases, sizes, 3, 1, (work) => console.log(`measured ${work} (${((Date.now() - started) / 1000).toFixed(0)} s)`));
  const lines = [
    `# gpu.js on this machine`,
    '',
    `gpu.js modes available: ${modes.join(', ')}; sizes ${JSON.stringify(sizes)}; medians of 3 (compute + read-back).`,
    '',
    '| work | backend | seconds | speed vs cpu float64 | deviation |',
    '| --- | --- | --- | --- | --- |',
    ...results.map((r) => {
      const base = median(results.find((b) => b.work === r.work && b.backend === 'almora cpu float64')!.seconds);
      return `| ${r.work} | ${r.backend} | ${median(r.seconds).toPrecision(3)} | ${(base / median(r.seconds)).toFixed(2)}× | ${r.deviation.toExponential(1)} |`;
    }),
  ];
  writeFileSync(path.join(out, 'gpu-check.md'), `${lines.join('\n')}\n`);
  writeFileSync(path.join(out, 'gpu-check.json'), JSON.stringify({ modes, sizes, results }, null, 2));
  console.log(lines.join('\n'));
  const failed = results.filter((r) => !(r.deviation < 1e-4));
  if (failed.length > 0) {
    console.error(`deviation above 1e-4 on: ${failed.map((r) => `${r.backend} ${r.work}`).join('; ')}`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
