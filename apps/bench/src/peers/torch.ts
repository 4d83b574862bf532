import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PYTHON, peerScript } from './python.js';

/** What the PyTorch peer measured, or why it could not run. */
export type TorchOutcome =
  | { available: true; version: string; threads: number; results: Record<string, { median?: number; times?: number[]; error?: string }> }
  | { available: false; note: string };

/** Times PyTorch CPU autograd of the same loss at each length, through Debian's python3-torch. */
export function runTorchPeer(spec: {
  lengths: number[];
  d: number;
  rank: number;
  adaptation: string;
  repeats: number;
  budget: number;
  seed: number;
}): TorchOutcome {
  const file = peerScript('torch_lora_attention.py');
  if (!existsSync(PYTHON) || !file) return { available: false, note: 'PyTorch peer skipped: /usr/bin/python3 or the peer script is missing' };
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return { available: false, note: 'PyTorch peer skipped: python3-torch is not installed (apt-get install python3-torch)' };
  const run = spawnSync(PYTHON, [file], { input: JSON.stringify(spec), encoding: 'utf8', maxBuffer: 1 << 24 });
  if (run.status !== 0) return { available: false, note: `PyTorch peer failed: ${run.stderr.trim().split('\n').pop()}` };
  const parsed = JSON.parse(run.stdout) as { torch: string; threads: number; results: Record<string, { median?: number; times?: number[]; error?: string }> };
  return { available: true, version: parsed.torch, threads: parsed.threads, results: parsed.results };
}
