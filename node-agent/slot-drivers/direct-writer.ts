import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** The unit O_DIRECT needs offsets, lengths and memory aligned to (covers 512 and 4096 byte sectors). */
const ALIGN = 4096;

/** Writes a file block by block, bypassing the page cache when the filesystem allows it. */
export interface BlockWriter {
  /** One buffer per block in flight, each `blockBytes` long, aligned for O_DIRECT. */
  readonly buffers: readonly Buffer[];
  /** Whether writes bypass the page cache. */
  readonly direct: boolean;
  /** Writes `length` bytes of a buffer at `position` (a multiple of the block size). */
  write(buffer: Buffer, length: number, position: number): Promise<void>;
  /** fsyncs and closes. */
  finish(): Promise<void>;
  /** Closes without syncing (the caller removes the file). */
  abort(): Promise<void>;
}

/**
 * Finds an offset into `raw` whose address suits O_DIRECT. JavaScript cannot see addresses, so
 * it asks the kernel: an aligned write succeeds, a misaligned one fails with EINVAL.
 */
async function alignedOffset(file: FileHandle, raw: Buffer): Promise<number | undefined> {
  for (let offset = 0; offset < ALIGN; offset += 16) {
    try {
      await file.write(raw, offset, ALIGN, 0);
      return offset;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    }
  }
  return undefined;
}

/**
 * Opens `path` for block writes. Like `dd oflag=direct`, the slot bypasses the page cache (on
 * this kind of disk that is several times faster than buffered writes and keeps the cache for the
 * running system); a filesystem without O_DIRECT (tmpfs) or an odd block size falls back to
 * buffered writes. A last, partial block goes through a buffered handle.
 */
export async function openBlockWriter(path: string, blockBytes: number, count: number): Promise<BlockWriter> {
  const buffered = await open(path, 'w', 0o644);
  let direct: FileHandle | undefined;
  // allocUnsafeSlow: an own allocation per buffer (never a pooled slice), so it does not move.
  const slab = () => {
    const raw = Buffer.allocUnsafeSlow(blockBytes + ALIGN);
    return { raw, view: (offset: number) => raw.subarray(offset, offset + blockBytes) };
  };
  const slabs = Array.from({ length: count }, slab);
  let buffers = slabs.map((s) => s.view(0));
  if (blockBytes % ALIGN === 0 && constants.O_DIRECT !== undefined) {
    try {
      direct = await open(path, constants.O_WRONLY | constants.O_DIRECT);
      const offsets: (number | undefined)[] = [];
      for (const s of slabs) offsets.push(await alignedOffset(direct, s.raw));
      if (offsets.some((o) => o === undefined)) throw new Error('no aligned offset');
      buffers = slabs.map((s, i) => s.view(offsets[i]!));
    } catch {
      await direct?.close();
      direct = undefined;
    }
  }

  return {
    buffers,
    direct: direct !== undefined,
    async write(buffer, length, position) {
      const aligned = direct ? length - (length % ALIGN) : 0;
      if (aligned > 0) await direct!.write(buffer, 0, aligned, position);
      if (aligned < length) await buffered.write(buffer, aligned, length - aligned, position + aligned);
    },
    async finish() {
      await direct?.sync();
      await buffered.sync();
      await direct?.close();
      await buffered.close();
    },
    async abort() {
      await direct?.close().catch(() => undefined);
      await buffered.close().catch(() => undefined);
    },
  };
}
