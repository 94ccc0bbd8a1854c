import { mkdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { Digest, describeIssues, otherSlot, type Slot } from '../../schema/index.ts';
import { fsyncDir, unlinkDurable, writeFileAtomic } from '../atomic-file.ts';
import { SlotDriverError, SlotInUseError } from '../errors.ts';
import { readBootState, writeBootState, type BootState } from './boot-state.ts';
import type { InstallOptions, InstallSource, SlotDriver, SlotInfo } from './driver.ts';
import { copyVerified } from './verified-copy.ts';

/** What a slot holds, stored next to its image; written last, so a slot without it is empty. */
const SlotMeta = z.object({ version: z.string().min(1), digest: Digest.optional() });

export interface FileSlotDriverOptions {
  /** Directory with `a.img`, `b.img`, their `.json` metadata and `boot-state.json`. */
  readonly slotsDir: string;
  /** Fault injection for crash tests (see copyVerified). */
  readonly chunkDelayMs?: number;
}

/**
 * Slot images as files: the passive slot is written to a temp file (every chunk verified),
 * fsynced and renamed into place; a boot-state file stands in for the bootloader.
 */
export function createFileSlotDriver(options: FileSlotDriverOptions): SlotDriver {
  const dir = options.slotsDir;
  const imageFile = (slot: Slot) => join(dir, `${slot}.img`);
  const metaFile = (slot: Slot) => join(dir, `${slot}.json`);

  async function readMeta(slot: Slot): Promise<SlotInfo | undefined> {
    let text: string;
    try {
      text = await readFile(metaFile(slot), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new SlotDriverError(`cannot read ${metaFile(slot)}: ${(err as Error).message}`, { cause: err });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new SlotDriverError(
        `${metaFile(slot)} is not JSON; it is written atomically, so check the disk, or write slot ${slot} again`,
        { cause: err },
      );
    }
    const parsed = SlotMeta.safeParse(raw);
    if (!parsed.success) {
      throw new SlotDriverError(
        `${metaFile(slot)} is not slot metadata: ${describeIssues(parsed.error.issues, raw).join('; ')}`,
      );
    }
    return parsed.data;
  }

  async function state(): Promise<BootState> {
    const s = await readBootState(dir);
    if (!s) throw new SlotDriverError(`no boot state in ${dir}; the agent creates it at start (init)`);
    return s;
  }

  async function requireImage(slot: Slot, action: string): Promise<void> {
    if (!(await readMeta(slot))) {
      throw new SlotInUseError(`cannot ${action} slot ${slot}: it holds no image; write one first`);
    }
  }

  return {
    name: 'file',
    oneShotTrial: true,
    accepts: ['file'],

    async init(initialVersion) {
      await mkdir(dir, { recursive: true });
      if (await readBootState(dir)) return;
      // A fresh node runs whatever it was installed with from slot a.
      if (!(await readMeta('a')))
        await writeFileAtomic(metaFile('a'), JSON.stringify({ version: initialVersion }));
      await writeBootState(dir, {
        v: 1,
        active: 'a',
        next: null,
        tries: 0,
        booted: 'a',
        trial: false,
        bad: [],
      });
    },

    async status() {
      const s = await state();
      const [a, b] = await Promise.all([readMeta('a'), readMeta('b')]);
      const mark = (slot: Slot, info: SlotInfo | undefined) =>
        info && s.bad.includes(slot) ? { ...info, bad: true } : info;
      return {
        booted: s.booted,
        primary: s.active,
        trial: s.trial,
        next: s.next ?? undefined,
        slots: { a: mark('a', a), b: mark('b', b) },
      };
    },

    async install(slot: Slot, source: InstallSource, opts: InstallOptions) {
      if (source.type !== 'file') {
        throw new SlotDriverError(`the file slot driver installs image files, got an ${source.type} image`);
      }
      const s = await state();
      if (slot === s.booted) {
        throw new SlotInUseError(`refusing to write slot ${slot}: the node booted from it`);
      }
      if (slot === s.active) {
        throw new SlotInUseError(
          `refusing to write slot ${slot}: it is the committed slot the node falls back to`,
        );
      }
      // Empty the slot first: from here until the metadata is written, it is not bootable.
      await unlinkDurable(metaFile(slot));
      if (s.next === slot || s.bad.includes(slot)) {
        await writeBootState(dir, {
          ...s,
          next: s.next === slot ? null : s.next,
          bad: s.bad.filter((x) => x !== slot),
        });
      }
      const tmp = `${imageFile(slot)}.tmp`;
      try {
        await copyVerified(source.path, tmp, source.manifest, {
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
          ...(options.chunkDelayMs ? { chunkDelayMs: options.chunkDelayMs } : {}),
        });
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
      await rename(tmp, imageFile(slot));
      await fsyncDir(dir);
      await writeFileAtomic(metaFile(slot), JSON.stringify({ version: opts.version, digest: opts.digest }));
    },

    async armTrialBoot(slot) {
      const s = await state();
      if (slot === s.booted) throw new SlotInUseError(`slot ${slot} is already booted; arm the other slot`);
      await requireImage(slot, 'arm');
      await writeBootState(dir, { ...s, next: slot, tries: 1 });
    },

    async disarm() {
      const s = await state();
      if (s.next === null && s.tries === 0) return;
      await writeBootState(dir, { ...s, next: null, tries: 0 });
    },

    async markGood(slot) {
      const s = await state();
      if (s.booted !== slot) {
        throw new SlotDriverError(`cannot commit slot ${slot}: the node booted slot ${s.booted}`);
      }
      await writeBootState(dir, {
        ...s,
        active: slot,
        trial: false,
        next: null,
        tries: 0,
        bad: s.bad.filter((x) => x !== slot),
      });
    },

    async markBad(slot) {
      const s = await state();
      const other = otherSlot(slot);
      const active = s.active === slot && (await readMeta(other)) ? other : s.active;
      await writeBootState(dir, {
        ...s,
        active,
        next: s.next === slot ? null : s.next,
        tries: s.next === slot ? 0 : s.tries,
        bad: s.bad.includes(slot) ? s.bad : [...s.bad, slot],
      });
    },

    async activate(slot) {
      await requireImage(slot, 'activate');
      const s = await state();
      await writeBootState(dir, {
        ...s,
        active: slot,
        next: null,
        tries: 0,
        bad: s.bad.filter((x) => x !== slot),
      });
    },
  };
}
