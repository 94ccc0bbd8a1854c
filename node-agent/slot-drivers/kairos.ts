import { otherSlot, type Slot } from '../../schema/index.ts';
import { SlotDriverError, SlotInUseError } from '../errors.ts';
import type { SlotDriver, SlotStatus } from './driver.ts';
import { readLedger, requireLedger, writeLedger, type SlotLedger } from './slot-ledger.ts';
import type { Tool } from './tool.ts';

export interface KairosSlotDriverOptions {
  readonly tool: Tool;
  /** kairos-agent binary. */
  readonly kairosAgent: string;
  /** grub2-editenv binary. */
  readonly grubEditenv: string;
  /** The GRUB environment block (Kairos: /oem/grubenv). */
  readonly grubenv: string;
  /** The agent's slot ledger file. */
  readonly ledgerFile: string;
  /** This boot's id: tells whether the machine rebooted since an install swapped the entries. */
  readonly bootId: () => Promise<string>;
}

type Entry = 'cos' | 'fallback';

const BOOT_ENTRY: Record<string, Entry> = { active_boot: 'cos', passive_boot: 'fallback' };

/**
 * Kairos A/B: `kairos-agent upgrade --source oci:…` copies the running `active` image to
 * `passive` and writes the new one to `active`. The driver tracks which of its slots a/b is which
 * boot entry, keeps the previous image the GRUB default (`saved_entry`) and boots the new one
 * once (`next_entry`) until it is committed, so an uncommitted trial falls back at the next boot
 * just as Kairos's own boot assessment does after a failed boot.
 */
export function createKairosSlotDriver(o: KairosSlotDriverOptions): SlotDriver {
  const grub = (...args: string[]) => o.tool(o.grubEditenv, [o.grubenv, ...args]);

  async function grubEnv(): Promise<Record<string, string>> {
    const out = await grub('list');
    const env: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) env[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
    return env;
  }

  async function bootedEntry(): Promise<Entry> {
    const out = (await o.tool(o.kairosAgent, ['state', 'get', 'boot'])).trim();
    const entry = BOOT_ENTRY[out];
    if (!entry) {
      throw new SlotDriverError(
        `kairos-agent reports boot '${out}'; expected active_boot or passive_boot (recovery is not an A/B slot — reset the node)`,
      );
    }
    return entry;
  }

  const slotOf = (ledger: SlotLedger, entry: string | undefined): Slot | undefined =>
    entry === undefined
      ? undefined
      : ledger.entries?.a === entry
        ? 'a'
        : ledger.entries?.b === entry
          ? 'b'
          : undefined;
  const entryOf = (ledger: SlotLedger, slot: Slot): Entry =>
    ledger.entries?.[slot] ?? (slot === 'a' ? 'cos' : 'fallback');

  async function status(): Promise<SlotStatus & { ledger: SlotLedger }> {
    const ledger = await requireLedger(o.ledgerFile);
    const [entry, env] = [await bootedEntry(), await grubEnv()];
    const sameBoot = ledger.swap !== null && ledger.swap.bootId === (await o.bootId());
    const booted = slotOf(sameBoot ? { ...ledger, entries: ledger.swap!.entries } : ledger, entry)!;
    const primary = slotOf(ledger, env['saved_entry'] ?? 'cos') ?? booted;
    const version = (await o.tool(o.kairosAgent, ['state', 'get', 'kairos.version'])).trim();
    const images = { ...ledger.images };
    if (version) images[booted] = { ...images[booted], version };
    return {
      booted,
      primary,
      trial: booted !== primary,
      next: slotOf(ledger, env['next_entry']),
      slots: { a: images.a, b: images.b },
      ledger,
    };
  }

  async function requireImage(ledger: SlotLedger, slot: Slot, action: string): Promise<void> {
    if (!ledger.images[slot])
      throw new SlotInUseError(`cannot ${action} slot ${slot}: it holds no image; write one first`);
  }

  return {
    name: 'kairos',
    oneShotTrial: true,
    accepts: ['oci'],

    async init(initialVersion) {
      if (await readLedger(o.ledgerFile)) return;
      const entry = await bootedEntry();
      const other: Entry = entry === 'cos' ? 'fallback' : 'cos';
      await writeLedger(o.ledgerFile, {
        v: 1,
        images: { a: { version: initialVersion } },
        entries: { a: entry, b: other },
        swap: null,
        trial: null,
      });
    },

    status: async () => {
      const { ledger: _ledger, ...s } = await status();
      return s;
    },

    async install(slot, source, opts) {
      if (source.type !== 'oci') {
        throw new SlotDriverError(`the kairos slot driver installs OCI images, got an image ${source.type}`);
      }
      const s = await status();
      if (slot === s.booted)
        throw new SlotInUseError(`refusing to write slot ${slot}: the node booted from it`);
      // Kairos copies `active` over `passive` before writing: booted from passive, that copy
      // would overwrite the running system.
      if (entryOf(s.ledger, s.booted) !== 'cos') {
        throw new SlotInUseError(
          `refusing to upgrade while booted from the passive entry (slot ${s.booted}): kairos-agent upgrade would overwrite it; commit or roll back first`,
        );
      }
      await o.tool(o.kairosAgent, ['upgrade', '--source', `oci:${source.reference}@${source.digest}`]);
      const bootId = await o.bootId();
      const ledger: SlotLedger = {
        ...s.ledger,
        entries: slot === 'a' ? { a: 'cos', b: 'fallback' } : { a: 'fallback', b: 'cos' },
        // The running system booted with the old entries; they name it until the next boot.
        swap: {
          bootId,
          entries: s.ledger.swap?.bootId === bootId ? s.ledger.swap.entries : s.ledger.entries!,
        },
        images: { ...s.ledger.images, [slot]: { version: opts.version, digest: opts.digest } },
      };
      await writeLedger(o.ledgerFile, ledger);
      // The old image now sits in passive: keep it the default until the new one is committed.
      await grub('set', 'saved_entry=fallback');
    },

    async armTrialBoot(slot) {
      const s = await status();
      if (slot === s.booted) throw new SlotInUseError(`slot ${slot} is already booted; arm the other slot`);
      await requireImage(s.ledger, slot, 'arm');
      await grub('set', `next_entry=${entryOf(s.ledger, slot)}`);
    },

    async disarm() {
      await grub('unset', 'next_entry');
    },

    async markGood(slot) {
      const s = await status();
      if (s.booted !== slot)
        throw new SlotDriverError(`cannot commit slot ${slot}: the node booted slot ${s.booted}`);
      await grub('set', `saved_entry=${entryOf(s.ledger, slot)}`);
    },

    async markBad(slot) {
      const ledger = await requireLedger(o.ledgerFile);
      await grub('unset', 'next_entry');
      await grub('set', `saved_entry=${entryOf(ledger, otherSlot(slot))}`);
    },

    async activate(slot) {
      const ledger = await requireLedger(o.ledgerFile);
      await requireImage(ledger, slot, 'activate');
      await grub('unset', 'next_entry');
      await grub('set', `saved_entry=${entryOf(ledger, slot)}`);
    },
  };
}
