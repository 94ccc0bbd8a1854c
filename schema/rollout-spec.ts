import { z } from 'zod';
import { RolloutId } from './ids.ts';
import { Duration } from './duration.ts';
import { Selector } from './labels.ts';
import { Threshold } from './threshold.ts';
import { Waves } from './waves.ts';

const oneLine = (what: string) =>
  z
    .string()
    .min(1, `expected ${what}`)
    .regex(/^[^\n\r]*$/, `expected ${what} on one line`);

/**
 * Wrap the built slot image in a RAUC bundle signed with the operator's X.509 key, for nodes
 * whose `rauc` slot driver installs it with `rauc install`. The paths are read on the worker
 * that builds.
 */
export const RaucBundleRequest = z
  .object({
    /** Must equal the `compatible` of the nodes' /etc/rauc/system.conf, or RAUC refuses the bundle. */
    compatible: oneLine('the compatible string of the target system.conf, e.g. acme-gateway'),
    /** Signing certificate (PEM); the nodes' RAUC keyring must trust it. */
    cert: oneLine('the path of the signing certificate (PEM)'),
    /** Its private key (PEM). */
    key: oneLine('the path of the signing key (PEM)'),
    /** Intermediate certificate(s) between the keyring's CA and the signing certificate (PEM). */
    intermediate: oneLine('the path of an intermediate certificate (PEM)').optional(),
    /** `verity` (RAUC's default since 1.5, checked block by block) or `plain` (for RAUC before 1.5). */
    bundleFormat: z.enum(['verity', 'plain']).default('verity'),
    /** The slot class the image is for (`[slot.<class>.N]` in system.conf). */
    slotClass: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'expected a slot class such as rootfs')
      .default('rootfs'),
  })
  .strict();
export type RaucBundleRequest = z.infer<typeof RaucBundleRequest>;

/** What to roll out: an image to build from a rootfs or Containerfile, or one already built. */
export const ImageRequest = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('rootfs'),
    /** Directory holding the root filesystem to pack into a slot image. */
    path: z.string().min(1),
    format: z.enum(['ext4', 'squashfs']).default('ext4'),
    /** Wrap the image in a signed RAUC bundle. */
    rauc: RaucBundleRequest.optional(),
  }),
  z.object({
    type: z.literal('containerfile'),
    path: z.string().min(1),
    /** Wrap the image in a signed RAUC bundle. */
    rauc: RaucBundleRequest.optional(),
  }),
  z.object({
    type: z.literal('oci'),
    reference: z.string().min(1, 'expected an OCI reference such as registry/repo:tag@sha256:…'),
    /** Filesystem of the slot image the OCI image is converted into for file, grub and rauc nodes. */
    format: z.enum(['ext4', 'squashfs']).default('ext4'),
    /** Wrap the converted image in a signed RAUC bundle, for nodes whose `rauc` driver installs it. */
    rauc: RaucBundleRequest.optional(),
  }),
  z.object({ type: z.literal('published'), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/) }),
]);
export type ImageRequest = z.infer<typeof ImageRequest>;

/** Daily maintenance window in UTC during which nodes may reboot. */
export const MaintenanceWindow = z.object({
  /** `HH:MM` UTC. */
  start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM (UTC)'),
  /** Length of the window. */
  duration: Duration,
});

/** A rollout as an operator asks for it; every field is documented because operators read errors about them. */
export const RolloutSpec = z
  .object({
    /** Business id; becomes the workflow id `rollout/<id>`. */
    id: RolloutId,
    image: ImageRequest,
    /** Version the new image carries; nodes already on it are skipped, older ones are upgraded. */
    version: z.string().min(1, 'expected a version such as 1.4.2').max(128),
    /** Which nodes to target (an empty selector targets the whole fleet). */
    selector: Selector.default([]),
    /** Cumulative reach of each wave, e.g. `1,10%,50%,100%`. */
    waves: Waves.prefault('1,10%,50%,100%'),
    /** How many nodes may be upgrading (and so unavailable) at once. */
    maxUnavailable: z.number().int().min(1, 'expected at least 1 node at a time').default(1),
    /** Failures tolerated before the failure action runs. */
    failureThreshold: Threshold.default({ type: 'count', count: 0 }),
    /** Do not judge a percentage threshold before this many nodes finished. */
    minExecuted: z.number().int().nonnegative().default(1),
    /** What a breached threshold does. */
    onFailure: z.enum(['pause', 'rollback']).default('pause'),
    /** How long a wave must stay healthy after its last node before the next one starts. */
    soak: Duration.default(0),
    /** Wait for an operator's approval between waves. */
    approveWaves: z.boolean().default(false),
    /** Reboot only inside this window. */
    maintenanceWindow: MaintenanceWindow.optional(),
    /** Allow a version that is older than what nodes run. */
    allowDowngrade: z.boolean().default(false),
    /** Per-node phase time limits. */
    timeouts: z
      .object({
        accept: Duration.prefault('30s'),
        write: Duration.prefault('15m'),
        reboot: Duration.prefault('10m'),
        health: Duration.prefault('10m'),
      })
      .default({ accept: 30_000, write: 900_000, reboot: 600_000, health: 600_000 }),
  })
  .strict();
export type RolloutSpecInput = z.input<typeof RolloutSpec>;
export type RolloutSpec = z.output<typeof RolloutSpec>;
