/** Debian's python3, where python3-torch and python3-numpy are installed (not a python3 earlier on PATH). */
export const SYSTEM_PYTHON: string;
/** Why the system Python cannot import `module` (e.g. 'torch', 'numpy'), with the apt package to install; undefined when it can. */
export function pythonModuleMissing(module: string): string | undefined;
