import { createHash } from 'node:crypto';

/**
 * Content-addressed chunk storage: bytes by their `sha256:<hex>` digest. Implementations refuse
 * to store bytes that do not hash to the digest, so whatever `get` returns was verified once.
 */
export interface ChunkStore {
  /** Names the store in logs, e.g. `file:/var/lib/slotflow/chunks`. */
  readonly name: string;
  has(digest: string): Promise<boolean>;
  /** The chunk's bytes, or undefined when not held. */
  get(digest: string): Promise<Uint8Array | undefined>;
  /** Stores bytes under their digest; throws ChunkIntegrityError when they hash to something else. */
  put(digest: string, bytes: Uint8Array): Promise<void>;
  /** Forgets a chunk (no error when absent). */
  delete(digest: string): Promise<void>;
}

/** `sha256:<hex>` of some bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
