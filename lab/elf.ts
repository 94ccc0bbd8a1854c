import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LabBuildError } from './errors.ts';
import { runTool } from './tools.ts';

/** The shared libraries (and the dynamic loader) a host binary needs, as `ldd` lists them. */
export async function sharedLibraries(binary: string): Promise<string[]> {
  const stdout = await runTool('ldd', [binary], `listing the libraries of ${binary}`, { timeoutMs: 30_000 });
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    if (/not found/.test(line)) {
      throw new LabBuildError(`${binary} needs a library the host lacks: ${line.trim()}; install it first`);
    }
    const path = /=>\s+(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    if (path) libs.push(path);
  }
  return libs;
}

/**
 * Copies a host binary into a root filesystem at `dest` together with every library it loads,
 * each at the same absolute path as on the host, so it runs there as it does here.
 */
export async function copyBinary(root: string, binary: string, dest: string): Promise<void> {
  for (const path of [...(await sharedLibraries(binary)), binary]) {
    const target = join(root, path === binary ? dest : path);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(path, target);
  }
}
