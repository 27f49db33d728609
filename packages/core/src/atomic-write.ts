/**
 * Writes a file so that a reader sees either the old content or the new, never a part: the data goes to a
 * temp file beside the target (`<target>.tmp-<pid>-<time>`), is fsynced, renamed over the target, and the
 * folder is fsynced so the rename survives a power cut. Node only (the file system is imported on demand, so
 * browser bundles that never call it stay free of `node:fs`). Returns the target path.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<string> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const temp = `${target}.tmp-${process.pid}-${Date.now()}`;
  const handle = await fs.open(temp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  await fs.rename(temp, target);
  try {
    const folder = await fs.open(path.dirname(target), 'r');
    await folder.sync().catch(() => {});
    await folder.close();
  } catch {
    // some file systems do not allow opening a folder; the rename is atomic all the same
  }
  return target;
}

/** Whether `name` is a temp file {@link writeFileAtomic} left behind when its process was killed mid-write. */
export function isAtomicWriteTemp(name: string): boolean {
  return /\.tmp-\d+-\d+$/.test(name);
}
