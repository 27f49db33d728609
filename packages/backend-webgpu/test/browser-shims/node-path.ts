// Browser stand-in for `node:path` (see node-module.ts).
export const sep = '/';
export function dirname(path: string): string {
  return path.replace(/\/[^/]*$/, '') || '/';
}
export default { sep, dirname };
