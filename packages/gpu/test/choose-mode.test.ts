import { expect, it } from 'vitest';
import { chooseMode } from '../src/create.js';

it("'gpu' and 'best' never choose webgpu, whose read-back is only asynchronous; a named mode is taken as asked", () => {
  const browser = ['webgpu', 'webgl2', 'webgl', 'webasm', 'cpu'] as const;
  expect(chooseMode('gpu', browser)).toBe('webgl2');
  expect(chooseMode('best', browser)).toBe('webgl2');
  expect(chooseMode('best', ['webgpu', 'webasm', 'cpu'])).toBe('webasm');
  expect(chooseMode('gpu', ['webgpu', 'webasm', 'cpu'])).toBeUndefined();
  expect(chooseMode('webgpu', browser)).toBe('webgpu');
  expect(chooseMode('headlessgl', browser)).toBeUndefined();
  expect(chooseMode('best', ['cpu'])).toBe('cpu');
});
