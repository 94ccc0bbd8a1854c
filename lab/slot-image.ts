import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createSquashfsBuilder } from '../activities/builders/rootfs.ts';
import { execaRunner } from '../runtime/runner.ts';
import { cacheKey, cachedDir, fileDigest } from './cache.ts';
import { BUSYBOX } from './initramfs.ts';
import type { GuestKernel } from './kernel.ts';
import { layOutSlotRootfs } from './slot-rootfs.ts';

const GUEST_DIR = new URL('./guest/', import.meta.url).pathname;

/** A root slot image for the lab. */
export interface SlotImage {
  /** The squashfs image, as slotflow's squashfs builder made it. */
  readonly path: string;
  /** The rootfs directory it was packed from (kept, so `slotflow image build --rootfs` can use it). */
  readonly rootfs: string;
}

/** Options for buildSlotImage. */
export interface SlotImageOptions {
  readonly kernel: GuestKernel;
  readonly initramfs: string;
  readonly version: string;
  readonly cacheRoot: string;
  /** The agent bundle: its cache key and how to add it to a rootfs. Without it, a probe-only slot. */
  readonly agent?: { readonly key: string; readonly add: (root: string) => Promise<void> };
}

/**
 * Builds (or takes from the cache) a bootable root slot image: lays out the rootfs, then packs it
 * with slotflow's own squashfs image builder, the pipeline `slotflow image build --format
 * squashfs` uses, so the image a VM boots is the kind of image a rollout writes. A read-only,
 * compressed root (a quarter of the ext4 image's bytes, mostly Node.js) is what immutable OS
 * images ship, and it makes every fetch and slot write that much shorter.
 */
export async function buildSlotImage(o: SlotImageOptions): Promise<SlotImage> {
  const scripts = (await readdir(GUEST_DIR)).sort();
  const key = cacheKey([
    'slot/2',
    o.version,
    await fileDigest(o.kernel.vmlinuz),
    await fileDigest(o.initramfs),
    await fileDigest(BUSYBOX),
    await fileDigest('/usr/bin/grub-editenv'),
    ...(await Promise.all(scripts.map(async (s) => `${s}:${await fileDigest(join(GUEST_DIR, s))}`))),
    o.agent?.key ?? 'no-agent',
  ]);
  const name = o.agent ? 'slot-agent' : 'slot-probe';
  const { dir } = await cachedDir(o.cacheRoot, name, key, async (out) => {
    const rootfs = join(out, 'rootfs');
    await layOutSlotRootfs(rootfs, {
      kernel: o.kernel,
      initramfs: o.initramfs,
      version: o.version,
      ...(o.agent ? { addAgent: o.agent.add } : {}),
    });
    await createSquashfsBuilder({ runner: execaRunner }).build({
      source: rootfs,
      version: o.version,
      outDir: out,
      format: 'squashfs',
    });
  });
  return { path: join(dir, 'image.squashfs'), rootfs: join(dir, 'rootfs') };
}
