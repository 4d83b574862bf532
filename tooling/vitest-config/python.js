// The Python peers the tests compare against (PyTorch, numpy) come from Debian's packages, which live
// in the system Python, not in a virtualenv that may come first on PATH.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const SYSTEM_PYTHON = '/usr/bin/python3';

const APT_PACKAGES = { torch: 'python3-torch', numpy: 'python3-numpy' };

export function pythonModuleMissing(module) {
  if (!existsSync(SYSTEM_PYTHON)) return `${SYSTEM_PYTHON} is missing`;
  const probe = spawnSync(SYSTEM_PYTHON, ['-c', `import ${module}`], { encoding: 'utf8' });
  if (probe.status === 0) return undefined;
  const apt = APT_PACKAGES[module] ?? `python3-${module}`;
  return `${apt} is not installed (apt-get install ${apt})`;
}
