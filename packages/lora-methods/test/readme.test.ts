import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runReadmeExample } from '@almora/vitest-config/readme';
import { expect, it } from 'vitest';

it('the README example runs as written: parameter counts and an SR-LoRA rank_pattern', () => {
  const run = runReadmeExample(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout.trim().split('\n')).toEqual(['lora 32', 'lora-sb 4', 'sbora 16', '{ q_proj: 4, v_proj: 3 }']);
});
