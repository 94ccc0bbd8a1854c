import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { otherSlot, type Slot } from '../../schema/index.ts';
import { ArtifactInvalidError, SlotDriverError, SlotInUseError } from '../errors.ts';
import type { SlotDriver, SlotStatus } from './driver.ts';
import {
  bootEnvAssignments,
  parseEditenvList,
  readBootEnv,
  withFirst,
  withFlags,
  type GrubBootEnv,
} from './grub-env.ts';
import { bootedSlotFromCmdline } from './kernel-cmdline.ts';
import { readLedger, requireLedger, writeLedger, type SlotLedger } from './slot-ledger.ts';
import type { Tool } from './tool.ts';
import { copyVerified } from './verified-copy.ts';

export interface GrubSlotDriverOptions {
  readonly tool: Tool;
  /** grub-editenv binary. */
  readonly grubEditenv: string;
  /** The GRUB environment block grub.cfg loads. */
  readonly envFile: string;
  /** The slots' block devices (regular files in tests). */
  readonly devices: Readonly<Record<Slot, string>>;
  /** The running kernel's command line (/proc/cmdline). */
  readonly cmdline: string;
  /** The agent's slot ledger file. */
  readonly ledgerFile: string;
  readonly log?: Logger | undefined;
}

/** Everything status() reads, kept for the operations that change it. */
interface GrubView {
  readonly booted: Slot;
  readonly env: GrubBootEnv;
  readonly ledger: SlotLedger;
  /** The armed trial not yet committed (ledger.trial, unless its boot was already confirmed). */
  readonly pending: Slot | null;
  readonly primary: Slot;
}

/**
 * The slot GRUB falls back to: the first in ORDER that may boot (OK) and has not used up its
 * try, passing over the pending trial. A try the booted slot used is its own, so it counts.
 */
function primaryOf(env: GrubBootEnv, booted: Slot, pending: Slot | null): Slot {
  return env.order.find((s) => s !== pending && env.ok[s] && (!env.tried[s] || s === booted)) ?? booted;
}

/**
 * A/B slots on two block devices, booted by GRUB through RAUC's GRUB protocol (grub-env.ts) with
 * the project's grub.cfg. Arming puts the slot first with a fresh try; GRUB uses the try on the
 * next boot, so a trial that is not committed is skipped at the boot after (one-shot), and a
 * kernel that never reaches userspace falls back on its own. Images are written with the
 * verified direct writer; what each slot holds is kept in the slot ledger.
 */
export function createGrubSlotDriver(o: GrubSlotDriverOptions): SlotDriver {
  const editenv = (...args: string[]) => o.tool(o.grubEditenv, [o.envFile, ...args]);

  async function requireEnvFile(): Promise<void> {
    // grub-editenv creates a missing file, which GRUB would never read: refuse instead.
    try {
      await stat(o.envFile);
    } catch (err) {
      throw new SlotDriverError(
        `no GRUB environment block at ${o.envFile}; create it where grub.cfg loads it (grub-editenv ${o.envFile} create, on the EFI system partition) or set grub.envFile`,
        { cause: err },
      );
    }
  }

  async function readEnv(): Promise<GrubBootEnv | undefined> {
    await requireEnvFile();
    return readBootEnv(parseEditenvList(await editenv('list')), o.envFile);
  }

  const writeEnv = async (env: GrubBootEnv) => void (await editenv('set', ...bootEnvAssignments(env)));

  async function view(): Promise<GrubView> {
    const [booted, env, ledger] = [
      await bootedSlotFromCmdline(o.cmdline, o.devices),
      await readEnv(),
      await requireLedger(o.ledgerFile),
    ];
    if (!env) {
      throw new SlotDriverError(`${o.envFile} has no ORDER; the agent writes it at start (init)`);
    }
    // A booted trial whose try was given back has been committed (markGood writes the
    // environment before the ledger).
    const committed = ledger.trial === booted && !env.tried[booted];
    const pending = committed ? null : ledger.trial;
    return { booted, env, ledger, pending, primary: primaryOf(env, booted, pending) };
  }

  async function saveLedger(v: GrubView, changes: Partial<Pick<SlotLedger, 'images' | 'trial' | 'bad'>>) {
    const next = { ...v.ledger, ...changes };
    if (JSON.stringify(next) !== JSON.stringify(v.ledger)) await writeLedger(o.ledgerFile, next);
  }

  /** The slot's device must exist: opening a missing path for writing would create a file there. */
  async function requireDevice(slot: Slot): Promise<void> {
    const device = o.devices[slot];
    const info = await stat(device).catch((err: unknown) => {
      throw new SlotDriverError(
        `slot ${slot}'s device ${device} does not exist; set grub.slots.${slot} to its block device`,
        { cause: err },
      );
    });
    if (!info.isBlockDevice() && !info.isFile()) {
      throw new SlotDriverError(
        `slot ${slot}'s device ${device} is neither a block device nor an image file; check grub.slots.${slot}`,
      );
    }
  }

  const requireImage = (v: GrubView, slot: Slot, action: string) => {
    if (!v.ledger.images[slot])
      throw new SlotInUseError(`cannot ${action} slot ${slot}: it holds no image; write one first`);
  };

  /** The ledger and environment of a first start: the booted slot holds the initial version. */
  async function firstStart(initialVersion: string): Promise<void> {
    if (!(await readLedger(o.ledgerFile))) {
      const booted = await bootedSlotFromCmdline(o.cmdline, o.devices);
      await writeLedger(o.ledgerFile, {
        v: 1,
        images: { [booted]: { version: initialVersion } },
        trial: null,
        bad: [],
      });
    }
    if (!(await readEnv())) {
      // Only the running slot is known to hold a system; the other may boot once it is written.
      const booted = await bootedSlotFromCmdline(o.cmdline, o.devices);
      await writeEnv({
        order: [booted, otherSlot(booted)],
        ok: { a: booted === 'a', b: booted === 'b' },
        tried: { a: false, b: false },
      });
      o.log?.info({ envFile: o.envFile, booted }, 'wrote the first boot order');
    }
  }

  return {
    name: 'grub',
    oneShotTrial: true,
    accepts: ['file'],

    async init(initialVersion) {
      await firstStart(initialVersion);
      // GRUB counts every boot, not only trials: the running committed slot gives its try back,
      // or the next boot would pass over it (RAUC systems run `rauc status mark-good` for this).
      const v = await view();
      if (v.booted === v.primary && v.pending !== v.booted && v.env.tried[v.booted]) {
        await writeEnv(withFlags(v.env, v.booted, { tried: false }));
        o.log?.info({ slot: v.booted }, 'confirmed the boot of the committed slot');
      }
    },

    async status(): Promise<SlotStatus> {
      const v = await view();
      const next = v.pending;
      const armed =
        next !== null && next !== v.booted && v.env.order[0] === next && v.env.ok[next] && !v.env.tried[next];
      const info = (slot: Slot) => {
        const image = v.ledger.images[slot];
        return image && v.ledger.bad.includes(slot) ? { ...image, bad: true } : image;
      };
      return {
        booted: v.booted,
        primary: v.primary,
        trial: v.pending === v.booted,
        next: armed ? next : undefined,
        slots: { a: info('a'), b: info('b') },
      };
    },

    async install(slot, source, opts) {
      if (source.type !== 'file') {
        throw new SlotDriverError(`the grub slot driver writes image files, got an ${source.type} image`);
      }
      const v = await view();
      if (slot === v.booted)
        throw new SlotInUseError(`refusing to write slot ${slot}: the node booted from it`);
      if (slot === v.primary) {
        throw new SlotInUseError(
          `refusing to write slot ${slot}: it is the committed slot the node falls back to`,
        );
      }
      await requireDevice(slot);
      // From here until the image is recorded, GRUB must not boot the slot and it holds nothing.
      await writeEnv(withFlags(withFirst(v.env, v.primary), slot, { ok: false, tried: false }));
      const images = { ...v.ledger.images };
      delete images[slot];
      await saveLedger(v, {
        images,
        trial: v.ledger.trial === slot ? null : v.ledger.trial,
        bad: v.ledger.bad.filter((s) => s !== slot),
      });
      o.log?.info({ slot, device: o.devices[slot], version: opts.version }, 'writing slot');
      try {
        await copyVerified(source.path, o.devices[slot], source.manifest, {
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        });
      } catch (err) {
        if (err instanceof ArtifactInvalidError || opts.signal?.aborted) throw err;
        throw new SlotDriverError(
          `writing slot ${slot} (${o.devices[slot]}) failed: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      await writeLedger(o.ledgerFile, {
        ...(await requireLedger(o.ledgerFile)),
        images: { ...images, [slot]: { version: opts.version, digest: opts.digest } },
      });
    },

    async armTrialBoot(slot) {
      const v = await view();
      if (slot === v.booted) throw new SlotInUseError(`slot ${slot} is already booted; arm the other slot`);
      requireImage(v, slot, 'arm');
      // The ledger first: a trial GRUB may boot is always one the agent knows it armed.
      await saveLedger(v, { trial: slot });
      // The running slot keeps a fresh try, so GRUB can fall back to it after the trial.
      const env = withFlags(withFlags(v.env, slot, { ok: true, tried: false }), v.booted, { tried: false });
      await writeEnv(withFirst(env, slot));
    },

    async disarm() {
      const v = await view();
      if (v.pending === null || v.pending === v.booted) return;
      // The withdrawn slot stays unbootable, or it would be GRUB's fallback without ever being tried.
      await writeEnv(withFlags(withFirst(v.env, v.primary), v.pending, { ok: false, tried: false }));
      await saveLedger(v, { trial: null });
    },

    async markGood(slot) {
      const v = await view();
      if (v.booted !== slot)
        throw new SlotDriverError(`cannot commit slot ${slot}: the node booted slot ${v.booted}`);
      await writeEnv(withFirst(withFlags(v.env, slot, { ok: true, tried: false }), slot));
      await saveLedger(v, { trial: null, bad: v.ledger.bad.filter((s) => s !== slot) });
    },

    async markBad(slot) {
      const v = await view();
      await writeEnv(withFirst(withFlags(v.env, slot, { ok: false }), otherSlot(slot)));
      await saveLedger(v, {
        trial: v.ledger.trial === slot ? null : v.ledger.trial,
        bad: v.ledger.bad.includes(slot) ? v.ledger.bad : [...v.ledger.bad, slot],
      });
    },

    async activate(slot) {
      const v = await view();
      requireImage(v, slot, 'activate');
      // An armed trial that never booted must not become GRUB's fallback behind `slot`.
      const withdrawn =
        v.pending !== null && v.pending !== slot && v.pending !== v.booted
          ? withFlags(v.env, v.pending, { ok: false, tried: false })
          : v.env;
      await writeEnv(withFirst(withFlags(withdrawn, slot, { ok: true, tried: false }), slot));
      await saveLedger(v, { trial: null, bad: v.ledger.bad.filter((s) => s !== slot) });
    },
  };
}
