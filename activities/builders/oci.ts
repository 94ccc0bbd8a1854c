import type { Digest } from '../../schema/index.ts';
import { BuildError } from './builder.ts';

/**
 * An OCI image the nodes pull themselves (Kairos): nothing to build, but it must be pinned by
 * digest so every node installs the same bytes.
 */
export function pinOciReference(reference: string): { reference: string; digest: Digest } {
  const m = /^([^@\s]+)@(sha256:[0-9a-f]{64})$/.exec(reference.trim());
  if (!m) {
    throw new BuildError(
      `OCI image '${reference}' is not pinned by digest; expected registry/repo:tag@sha256:<64 hex> (find it with 'skopeo inspect docker://…')`,
    );
  }
  return { reference: m[1] as string, digest: m[2] as Digest };
}
