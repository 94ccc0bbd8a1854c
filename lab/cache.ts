import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

const DONE = '.complete';

/** Where built lab pieces live: `$SLOTFLOW_CACHE/lab` (default `~/.cache/slotflow/lab`). */
export function labCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['SLOTFLOW_CACHE'] ?? join(homedir(), '.cache', 'slotflow'), 'lab');
}

/** sha256 of a file's bytes. */
export async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A short key over the given parts (strings, or digests the caller computed). */
export function cacheKey(parts: readonly string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${part.length}:${part}\n`);
  return hash.digest('hex').slice(0, 20);
}

/**
 * The directory `<root>/<name>-<key>`, built by `build` into a temporary sibling and renamed into
 * place when it finishes, so a crashed build never leaves a half-made entry that looks complete.
 */
export async function cachedDir(
  root: string,
  name: string,
  key: string,
  build: (dir: string) => Promise<void>,
): Promise<{ dir: string; hit: boolean }> {
  const dir = join(root, `${name}-${key}`);
  try {
    await access(join(dir, DONE));
    return { dir, hit: true };
  } catch {
    // not built yet
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
    await writeFile(join(tmp, DONE), `${new Date().toISOString()}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return { dir, hit: false };
}
