import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { ArtifactManifest } from '../../schema/index.ts';

/** sha256 and byte count of a stream (a file read back, a pulled blob). */
export async function sha256Of(stream: AsyncIterable<Uint8Array>): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const piece of stream) {
    hash.update(piece);
    size += piece.length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** Default chunk size: small enough to fetch from several peers at once, big enough to hash fast. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/** Bytes per read, rounded down to whole chunks: few syscalls whatever the chunk size. */
const READ_SIZE = 8 * 1024 * 1024;

/** Fills `buffer` from `position`; returns the bytes read (fewer only at the end of the file). */
async function fill(file: FileHandle, buffer: Buffer, position: number): Promise<number> {
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await file.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}

/**
 * Hashes a slot image in one pass over the file: the whole-image sha256 and one sha256 per
 * fixed-size chunk, which is what nodes verify before a byte reaches their passive slot. Each
 * block read feeds both digests while the next block is being read into the other buffer.
 */
export async function manifestOf(
  path: string,
  meta: { format: ArtifactManifest['format']; version: string },
  chunkSize = DEFAULT_CHUNK_SIZE,
): Promise<ArtifactManifest> {
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0)
    throw new RangeError(`chunk size must be a positive whole number of bytes, got ${chunkSize}`);
  const blockSize = Math.max(1, Math.floor(READ_SIZE / chunkSize)) * chunkSize;
  const buffers = [Buffer.allocUnsafe(blockSize), Buffer.allocUnsafe(blockSize)] as const;
  const whole = createHash('sha256');
  const chunks: ArtifactManifest['chunks'] = [];
  const file = await open(path, 'r');
  let size = 0;
  let turn = 0;
  let reading: Promise<number> | undefined = fill(file, buffers[0], 0);
  try {
    while (reading) {
      const filled = await reading;
      reading = undefined;
      const block = buffers[turn]!.subarray(0, filled);
      size += filled;
      turn = 1 - turn;
      // A full block may have more behind it: read it into the other buffer while this one hashes.
      if (filled === blockSize) reading = fill(file, buffers[turn]!, size);
      whole.update(block);
      for (let offset = 0; offset < filled; offset += chunkSize) {
        const piece = block.subarray(offset, offset + chunkSize);
        chunks.push({
          index: chunks.length,
          size: piece.length,
          digest: `sha256:${createHash('sha256').update(piece).digest('hex')}`,
        });
      }
    }
  } finally {
    // Only after a failure is a read still in flight; that failure is what the caller sees.
    await reading?.catch(() => undefined);
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
