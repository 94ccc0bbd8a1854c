// `openssl speed`, the native sha256 our hashing path is compared with.
import type { Runner } from '../runtime/runner.ts';

/** Block size the issue fixes for the comparison: 1 MiB, the manifest's chunk size. */
export const OPENSSL_BLOCK = 1024 * 1024;

/**
 * Parses `openssl speed -mr … sha256`: the `+F:<n>:sha256:<bytes/s>` line carries the rate for
 * the (single) block size asked for. Throws when the line is missing (e.g. an unknown algorithm).
 */
export function parseOpensslSpeed(text: string, algorithm = 'sha256'): number {
  for (const line of text.split('\n')) {
    const parts = line.trim().split(':');
    if (parts[0] === '+F' && parts[2] === algorithm && parts[3] !== undefined) {
      const rate = Number(parts[3]);
      if (Number.isFinite(rate) && rate > 0) return rate;
    }
  }
  throw new Error(
    `no "+F:…:${algorithm}:<bytes/s>" line in openssl speed's output: ${text.trim().slice(-300)}`,
  );
}

/**
 * `openssl speed -mr -elapsed -seconds S -bytes 1048576 sha256`, in bytes per second of wall
 * time: `-elapsed` makes it divide by wall-clock time like our own measurements do (by default
 * it divides by CPU time, which reads higher on a loaded machine).
 */
export async function opensslSha256(
  runner: Runner,
  seconds: number,
): Promise<{ bytesPerSec: number; command: string }> {
  const args = [
    'speed',
    '-mr',
    '-elapsed',
    '-seconds',
    String(seconds),
    '-bytes',
    String(OPENSSL_BLOCK),
    'sha256',
  ];
  const command = `openssl ${args.join(' ')}`;
  const ran = await runner.run('openssl', args, { timeoutMs: (seconds + 30) * 1000 });
  if (!ran.ok) throw new Error(`${command} failed: ${ran.failure}`);
  return { bytesPerSec: parseOpensslSpeed(`${ran.stdout}\n${ran.stderr}`), command };
}
