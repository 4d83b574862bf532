/**
 * A value for an error message: a primitive as written (cut to 80 characters), anything else by
 * its kind, since a hostile value can be nested too deep to print and printing it would overflow
 * the stack.
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (value === null || typeof value !== 'object') return (JSON.stringify(value) ?? String(value)).slice(0, 80);
  return Array.isArray(value) ? `a list of ${value.length}` : 'an object';
}
