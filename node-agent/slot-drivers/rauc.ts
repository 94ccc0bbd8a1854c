import { z } from 'zod';
import { describeIssues, type Slot } from '../../schema/index.ts';
import { SlotDriverError, SlotInUseError } from '../errors.ts';
import type { SlotDriver, SlotStatus } from './driver.ts';
import { readLedger, requireLedger, writeLedger, type SlotLedger } from './slot-ledger.ts';
import type { Tool } from './tool.ts';

export interface RaucSlotDriverOptions {
  readonly tool: Tool;
  /** rauc binary. */
  readonly rauc: string;
  /** The agent's slot ledger file. */
  readonly ledgerFile: string;
}

// The part of `rauc status --output-format=json` the driver reads.
const RaucSlot = z.object({
  bootname: z.string().optional(),
  state: z.string().optional(),
  boot_status: z.string().optional(),
});
const RaucStatus = z.object({
  booted: z.string(),
  boot_primary: z.string().nullable().optional(),
  slots: z.array(z.record(z.string(), RaucSlot)),
});

interface RaucView {
  /** bootname (A/B) → RAUC slot name (rootfs.0/rootfs.1). */
  readonly names: Record<Slot, string>;
  readonly booted: Slot;
  readonly primary: Slot;
  readonly bad: Record<Slot, boolean>;
}

function slotOfBootname(bootname: string): Slot | undefined {
  const lower = bootname.toLowerCase();
  return lower === 'a' || lower === 'b' ? lower : undefined;
}

/**
 * RAUC A/B: `rauc install` writes the other slot group; the driver keeps the booted slot the
 * primary until the trial is armed (`rauc status mark-active`), commits with `mark-good booted`
 * and falls back with `mark-bad`. The bootloader's boot attempts make the trial retry a few
 * times before it falls back on its own, so this driver's trial is not one-shot.
 */
export function createRaucSlotDriver(o: RaucSlotDriverOptions): SlotDriver {
  const rauc = (...args: string[]) => o.tool(o.rauc, args);

  async function view(): Promise<RaucView> {
    const out = await rauc('status', '--output-format=json');
    let raw: unknown;
    try {
      raw = JSON.parse(out);
    } catch (err) {
      throw new SlotDriverError(`rauc status printed no JSON: ${out.slice(0, 200)}`, { cause: err });
    }
    const parsed = RaucStatus.safeParse(raw);
    if (!parsed.success) {
      throw new SlotDriverError(
        `unexpected rauc status: ${describeIssues(parsed.error.issues, raw).join('; ')}`,
      );
    }
    const names: Partial<Record<Slot, string>> = {};
    const bad: Record<Slot, boolean> = { a: false, b: false };
    for (const entry of parsed.data.slots) {
      for (const [name, info] of Object.entries(entry)) {
        const slot = info.bootname ? slotOfBootname(info.bootname) : undefined;
        if (!slot) continue;
        names[slot] = name;
        bad[slot] = info.boot_status === 'bad';
      }
    }
    if (!names.a || !names.b) {
      throw new SlotDriverError('rauc status lists no slots with bootnames A and B; check system.conf');
    }
    const booted = slotOfBootname(parsed.data.booted);
    if (!booted) throw new SlotDriverError(`rauc reports booted '${parsed.data.booted}', expected A or B`);
    const primaryName = parsed.data.boot_primary;
    const primary = primaryName === names.b ? 'b' : primaryName === names.a ? 'a' : booted;
    return { names: names as Record<Slot, string>, booted, primary, bad };
  }

  async function status(): Promise<SlotStatus & { ledger: SlotLedger; raucNames: Record<Slot, string> }> {
    const [v, ledger] = [await view(), await requireLedger(o.ledgerFile)];
    const mark = (slot: Slot) => {
      const image = ledger.images[slot];
      return image && v.bad[slot] ? { ...image, bad: true } : image;
    };
    return {
      booted: v.booted,
      primary: v.primary,
      trial: ledger.trial === v.booted,
      next: ledger.trial !== null && ledger.trial !== v.booted ? ledger.trial : undefined,
      slots: { a: mark('a'), b: mark('b') },
      ledger,
      raucNames: v.names,
    };
  }

  async function setTrial(ledger: SlotLedger, trial: Slot | null): Promise<void> {
    if (ledger.trial !== trial) await writeLedger(o.ledgerFile, { ...ledger, trial });
  }

  return {
    name: 'rauc',
    oneShotTrial: false,
    accepts: ['file'],

    async init(initialVersion) {
      if (await readLedger(o.ledgerFile)) return;
      const v = await view();
      await writeLedger(o.ledgerFile, {
        v: 1,
        images: { [v.booted]: { version: initialVersion } },
        swap: null,
        trial: null,
      });
    },

    status: async () => {
      const { ledger: _l, raucNames: _n, ...s } = await status();
      return s;
    },

    async install(slot, source, opts) {
      if (source.type !== 'file') {
        throw new SlotDriverError(`the rauc slot driver installs bundle files, got an ${source.type} image`);
      }
      const s = await status();
      if (slot === s.booted)
        throw new SlotInUseError(`refusing to write slot ${slot}: the node booted from it`);
      const images = { ...s.ledger.images };
      delete images[slot];
      await writeLedger(o.ledgerFile, { ...s.ledger, images, trial: null });
      await rauc('install', source.path);
      // rauc install makes the new slot primary at once; keep the running one primary until the
      // agent arms the trial, so a reboot before that changes nothing.
      await rauc('status', 'mark-active', 'booted');
      await writeLedger(o.ledgerFile, {
        ...s.ledger,
        images: { ...images, [slot]: { version: opts.version, digest: opts.digest } },
        trial: null,
      });
    },

    async armTrialBoot(slot) {
      const s = await status();
      if (slot === s.booted) throw new SlotInUseError(`slot ${slot} is already booted; arm the other slot`);
      if (!s.ledger.images[slot])
        throw new SlotInUseError(`cannot arm slot ${slot}: it holds no image; write one first`);
      await setTrial(s.ledger, slot);
      await rauc('status', 'mark-active', s.raucNames[slot]);
    },

    async disarm() {
      const s = await status();
      await rauc('status', 'mark-active', 'booted');
      await setTrial(s.ledger, null);
    },

    async markGood(slot) {
      const s = await status();
      if (s.booted !== slot)
        throw new SlotDriverError(`cannot commit slot ${slot}: the node booted slot ${s.booted}`);
      await rauc('status', 'mark-good', 'booted');
      await rauc('status', 'mark-active', 'booted');
      await setTrial(s.ledger, null);
    },

    async markBad(slot) {
      const s = await status();
      await rauc('status', 'mark-bad', s.raucNames[slot]);
      await setTrial(s.ledger, null);
    },

    async activate(slot) {
      const s = await status();
      if (!s.ledger.images[slot])
        throw new SlotInUseError(`cannot activate slot ${slot}: it holds no image; write one first`);
      await rauc('status', 'mark-active', s.raucNames[slot]);
      await setTrial(s.ledger, null);
    },
  };
}
