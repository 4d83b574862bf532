/** The unified diff from `before` (named `from`) to `after` (named `to`); '' when they are equal. */
export function unifiedDiff(before: string, after: string, from: string, to: string, context?: number): string;
