import { describe, expect, it } from 'vitest';
import { cpuBackend } from '@almora/kernels';
import { cpuCore } from '@almora/tensor';
import { availableGpuModes, createGpuBackend } from '../src/index.js';
import { type Check, gradientChecks, primitiveChecks, refusalChecks, tallChecks } from '@almora/conformance';

const byName = (checks: Check[]) => checks.map((c) => [c.name, c] as const);

// The CPU with its fused overrides, and its core alone: there every fused kernel is its default
// composition from the core primitives, checked against the definitions and, end to end, by whole
// gradients against the CPU with its overrides.
const cpuRuns = await Promise.all(
  [cpuBackend, cpuCore].map(async (backend) => ({
    backend,
    float64: [...(await primitiveChecks(backend, 'float64')), ...(await tallChecks(backend))],
    float32: await primitiveChecks(backend, 'float32'),
    gradients: backend === cpuCore ? await gradientChecks(backend) : [],
  })),
);

describe.each(cpuRuns)('the CPU backend "$backend.name"', ({ backend, float64, float32, gradients }) => {
  it('refuses a fractional row offset, a bad causal start and a fractional diagonal offset with typed errors', () => {
    expect(refusalChecks(backend)).toEqual([]);
  });
  describe.each([
    ['float64', float64],
    ['float32', float32],
  ] as const)('in %s', (_dtype, checks) => {
    it.each(byName(checks))('%s agrees with its definition', (_name, check) => {
      expect(check.deviation).toBeLessThanOrEqual(check.tolerance);
    });
  });
  if (gradients.length > 0) {
    it.each(byName(gradients))('%s agrees with the CPU with its overrides in float64', (_name, check) => {
      expect(check.deviation).toBeLessThanOrEqual(check.tolerance);
    });
  }
});

// headlessgl runs where the optional 'gl' package is built and an X display exists (xvfb-run).
const nodeModes = (['headlessgl', 'webasm', 'cpu'] as const).filter((mode) => availableGpuModes().includes(mode));
if (!nodeModes.includes('headlessgl')) console.warn("gpu.js headlessgl not tested here: the optional 'gl' package is not built or there is no X display");
const gpuChecks = await Promise.all(
  nodeModes.map(async (mode) => {
    const backend = createGpuBackend({ mode });
    return { mode, primitives: [...(await primitiveChecks(backend)), ...(await tallChecks(backend))], gradients: await gradientChecks(backend) };
  }),
);

describe.each(gpuChecks)('the gpu.js backend in $mode mode', ({ mode, primitives, gradients }) => {
  it('refuses a fractional row offset, a bad causal start and a fractional diagonal offset with typed errors', () => {
    expect(refusalChecks(createGpuBackend({ mode }))).toEqual([]);
  });
  it.each(byName(primitives))('%s agrees with its definition', (_name, check) => {
    expect(check.deviation).toBeLessThanOrEqual(check.tolerance);
  });
  it.each(byName(gradients))('%s agrees with the CPU in float64', (_name, check) => {
    expect(check.deviation).toBeLessThanOrEqual(check.tolerance);
  });
});

describe('choosing a gpu.js mode', () => {
  it('lists the modes that run here, cpu always', () => {
    expect(availableGpuModes()).toContain('cpu');
  });

  it('refuses a GPU mode that is not available, with a typed error that says what to do', () => {
    if (availableGpuModes().includes('headlessgl')) return;
    expect(() => createGpuBackend({ mode: 'gpu' })).toThrow(/no GPU mode.*\{ mode: 'best' \}/);
    expect(() => createGpuBackend({ mode: 'headlessgl' })).toThrowError(expect.objectContaining({ code: 'BACKEND' }));
  });

  it("'best' falls back and says which mode it took", () => {
    const backend = createGpuBackend({ mode: 'best' });
    expect(backend.name).toBe(`gpu.js ${availableGpuModes().filter((m) => m !== 'webgpu')[0]}`);
  });
});
