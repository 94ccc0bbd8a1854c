import type { ArtifactManifest } from '../../schema/index.ts';

/**
 * Somewhere an image can be read from. Every implementation streams the bytes from an offset
 * (so an interrupted download resumes) and trusts nothing: the fetcher verifies every chunk.
 */
export interface ArtifactSource {
  /** Names the source in events and logs, e.g. `nats:slotflow-images`. */
  readonly name: string;
  /**
   * The image's bytes from `offset` to the end. Throws ArtifactUnavailableError when the source
   * cannot deliver, ArtifactInvalidError when it holds something else (wrong size).
   */
  open(manifest: ArtifactManifest, offset: number, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
}

/** The hex part of a `sha256:<hex>` digest (file names of air-gapped and HTTP mirrors). */
export function digestHex(digest: string): string {
  return digest.replace(/^sha256:/, '');
}
