import { z } from 'zod';
import { Digest } from './ids.ts';

/** One fixed-size piece of a slot image, verified on its own before it is used. */
export const Chunk = z.object({
  /** Position of the chunk, from 0. */
  index: z.number().int().nonnegative(),
  /** Byte length; every chunk but the last has the manifest's chunkSize. */
  size: z.number().int().positive(),
  /** sha256 of the chunk's bytes. */
  digest: Digest,
});
export type Chunk = z.infer<typeof Chunk>;

/** A built, content-addressed slot image and how to fetch and verify it piece by piece. */
export const ArtifactManifest = z
  .object({
    /** sha256 of the whole slot image. */
    digest: Digest,
    /** Total bytes. */
    size: z.number().int().nonnegative(),
    /** Filesystem of the image, or `rauc`: a signed RAUC bundle holding it. */
    format: z.enum(['ext4', 'squashfs', 'raw', 'rauc']),
    /** The OS version the image carries (what nodes report after booting it). */
    version: z.string().min(1).max(128),
    /** Size of every chunk but the last. */
    chunkSize: z.number().int().positive(),
    chunks: z.array(Chunk),
  })
  .superRefine((m, ctx) => {
    const total = m.chunks.reduce((sum, c) => sum + c.size, 0);
    if (total !== m.size) {
      ctx.addIssue({
        code: 'custom',
        path: ['chunks'],
        message: `expected chunk sizes to add up to size ${m.size} (they add up to ${total})`,
      });
    }
    m.chunks.forEach((c, i) => {
      if (c.index !== i)
        ctx.addIssue({ code: 'custom', path: ['chunks', i, 'index'], message: `expected index ${i}` });
      if (i < m.chunks.length - 1 && c.size !== m.chunkSize) {
        ctx.addIssue({
          code: 'custom',
          path: ['chunks', i, 'size'],
          message: `expected ${m.chunkSize} (chunkSize)`,
        });
      }
    });
  });
export type ArtifactManifest = z.infer<typeof ArtifactManifest>;

/** Where the image comes from: a built artifact, or an OCI reference the node pulls itself (Kairos). */
export const ImageSource = z.discriminatedUnion('type', [
  z.object({ type: z.literal('artifact'), manifest: ArtifactManifest }),
  z.object({
    type: z.literal('oci'),
    /** e.g. `quay.io/kairos/ubuntu:24.04-standard-amd64-generic-v3.2.1` */
    reference: z.string().min(1),
    /** Pinned digest of the image, so every node gets the same bytes. */
    digest: Digest,
    version: z.string().min(1).max(128),
  }),
]);
export type ImageSource = z.infer<typeof ImageSource>;
