/** Runs the first ```ts block of `<packageRoot>/README.md` with Node and returns its output and status. */
export function runReadmeExample(packageRoot: string): { status: number | null; stdout: string; stderr: string };
