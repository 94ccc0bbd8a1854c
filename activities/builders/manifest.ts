import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { ArtifactManifest } from '../../schema/index.ts';

/** Default chunk size: small enough to fetch from several peers at once, big enough to hash fast. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/**
 * Hashes a slot image in one pass: the whole-image sha256 and one sha256 per fixed-size chunk,
 * which is what nodes verify before a byte reaches their passive slot.
 */
export async function manifestOf(
  path: string,
  meta: { format: ArtifactManifest['format']; version: string },
  chunkSize = DEFAULT_CHUNK_SIZE,
): Promise<ArtifactManifest> {
  const whole = createHash('sha256');
  const chunks: ArtifactManifest['chunks'] = [];
  const file = await open(path, 'r');
  const buffer = Buffer.allocUnsafe(chunkSize);
  let size = 0;
  try {
    for (;;) {
      let filled = 0;
      while (filled < chunkSize) {
        const { bytesRead } = await file.read(buffer, filled, chunkSize - filled, size + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled === 0) break;
      const piece = buffer.subarray(0, filled);
      whole.update(piece);
      chunks.push({
        index: chunks.length,
        size: filled,
        digest: `sha256:${createHash('sha256').update(piece).digest('hex')}`,
      });
      size += filled;
      if (filled < chunkSize) break;
    }
  } finally {
    await file.close();
  }
  return {
    digest: `sha256:${whole.digest('hex')}`,
    size,
    format: meta.format,
    version: meta.version,
    chunkSize,
    chunks,
  };
}
