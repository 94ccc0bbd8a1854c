import { z } from 'zod';
import type { Runner } from '../../runtime/runner.ts';
import { describeIssues, type Slot } from '../../schema/index.ts';
import { ArtifactInvalidError, SlotDriverError, SlotInUseError } from '../errors.ts';
import type { SlotDriver, SlotInfo, SlotStatus } from './driver.ts';
import { slotOfBootname } from './grub-env.ts';
import { readLedger, requireLedger, writeLedger, type SlotLedger } from './slot-ledger.ts';
import { createTool } from './tool.ts';

export interface RaucSlotDriverOptions {
  /** Runs `rauc`; its environment decides the D-Bus the RAUC service answers on. */
  readonly runner: Runner;
  /** rauc binary. */
  readonly rauc: string;
  /** Limit for one rauc run (an install included). */
  readonly timeoutMs: number;
  /** The agent's slot ledger file. */
  readonly ledgerFile: string;
}

// The part of `rauc status --detailed --output-format=json` (RAUC 1.8) the driver reads.
const RaucSlot = z.object({
  bootname: z.string().nullable().optional(),
  state: z.string().optional(),
  boot_status: z.string().optional(),
  slot_status: z
    .object({
      bundle: z.object({ version: z.string().nullable().optional() }).partial().optional(),
      status: z.string().optional(),
    })
    .partial()
    .optional(),
});
const RaucStatus = z.object({
  compatible: z.string().optional(),
  booted: z.string().nullable(),
  boot_primary: z.string().nullable().optional(),
  slots: z.array(z.record(z.string(), RaucSlot)),
});

/** What RAUC says about the A/B slot pair. */
interface RaucView {
  /** Slot → RAUC slot name (e.g. rootfs.0). */
  readonly names: Record<Slot, string>;
  readonly booted: Slot;
  /** The slot the bootloader boots next by default; null when the bootloader has no order yet. */
  readonly primary: Slot | null;
  readonly good: Record<Slot, boolean>;
  /** The bundle version RAUC installed into each slot, from its slot status. */
  readonly versions: Record<Slot, string | undefined>;
  readonly ledger: SlotLedger;
}

/** RAUC's words for a bundle it will not install: these are about the bundle, not the machine. */
const REFUSAL =
  /signature|compatible|verif|manifest|bundle (is )?(invalid|corrupt)|not a (valid )?bundle|hash/i;

/**
 * RAUC A/B through the real `rauc`: `rauc install` writes the signed bundle into the slot RAUC
 * picks (the one not booted), `rauc status mark-active|mark-good|mark-bad` steer the
 * bootloader, and which slot booted, which is primary, which is good and which bundle version
 * each slot holds all come from `rauc status`. The agent keeps only what RAUC cannot know: the
 * trial it armed and not yet committed, the version of the slot installed before RAUC (first
 * boot), and the slotflow digest of each bundle it installed. With RAUC's grub backend and the
 * project's grub.cfg (RAUC's GRUB protocol) a trial gets one try, so it is one-shot.
 */
export function createRaucSlotDriver(o: RaucSlotDriverOptions): SlotDriver {
  const tool = createTool(o.runner, o.timeoutMs);
  const rauc = (...args: string[]) => tool(o.rauc, args);

  /** RAUC's view of the slot pair, from `rauc status --detailed`. */
  async function raucView(): Promise<Omit<RaucView, 'ledger'>> {
    const out = await rauc('status', '--detailed', '--output-format=json');
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
    const good: Record<Slot, boolean> = { a: false, b: false };
    const versions: Record<Slot, string | undefined> = { a: undefined, b: undefined };
    for (const entry of parsed.data.slots) {
      for (const [name, info] of Object.entries(entry)) {
        const slot = info.bootname ? slotOfBootname(info.bootname) : undefined;
        if (!slot) continue;
        names[slot] = name;
        good[slot] = info.boot_status === 'good';
        const installed = info.slot_status;
        if (installed?.bundle?.version && (installed.status ?? 'ok') === 'ok')
          versions[slot] = installed.bundle.version;
      }
    }
    if (!names.a || !names.b) {
      throw new SlotDriverError(
        'rauc status lists no slots with bootnames A and B; give the two root slots bootname=A and bootname=B in system.conf',
      );
    }
    const booted = parsed.data.booted === null ? undefined : slotOfBootname(parsed.data.booted);
    if (!booted) {
      throw new SlotDriverError(
        `rauc reports booted '${parsed.data.booted}', expected A or B; boot with rauc.slot=A|B on the kernel command line`,
      );
    }
    const primaryName = parsed.data.boot_primary;
    const primary = primaryName === names.a ? 'a' : primaryName === names.b ? 'b' : null;
    return { names: names as Record<Slot, string>, booted, primary, good, versions };
  }

  const view = async (): Promise<RaucView> => ({
    ...(await raucView()),
    ledger: await requireLedger(o.ledgerFile),
  });

  /** What `slot` holds: RAUC's bundle version, else the first-boot version the agent recorded. */
  function imageOf(v: RaucView, slot: Slot): SlotInfo | undefined {
    const recorded = v.ledger.images[slot];
    const version = v.versions[slot] ?? recorded?.version;
    if (version === undefined) return undefined;
    const digest = recorded?.version === version ? recorded.digest : undefined;
    // A booted slot that RAUC counts as bad is a trial not yet committed (its try is used up).
    const bad = !v.good[slot] && slot !== v.booted;
    return { version, ...(digest ? { digest } : {}), ...(bad ? { bad: true } : {}) };
  }

  async function setTrial(v: RaucView, trial: Slot | null): Promise<void> {
    if (v.ledger.trial !== trial) await writeLedger(o.ledgerFile, { ...v.ledger, trial });
  }

  const requireImage = (v: RaucView, slot: Slot, action: string) => {
    if (!imageOf(v, slot))
      throw new SlotInUseError(`cannot ${action} slot ${slot}: it holds no image; install a bundle first`);
  };

  /** `rauc install`, with a refusal of the bundle itself told apart from a failing machine. */
  async function raucInstall(bundle: string): Promise<void> {
    const result = await o.runner.run(o.rauc, ['install', bundle], { timeoutMs: o.timeoutMs });
    if (result.ok) return;
    const lastError = /LastError: (.+)/.exec(result.stdout)?.[1]?.trim();
    if (lastError && REFUSAL.test(lastError)) {
      throw new ArtifactInvalidError(
        `RAUC refused bundle ${bundle}: ${lastError}; sign it with a certificate the node's RAUC keyring trusts, for the compatible in its system.conf, and publish it unmodified`,
      );
    }
    // A verity bundle is mounted through dm-verity: a kernel without device-mapper cannot.
    const hint = /\/dev\/mapper|dm-verity|device.mapper/i.test(lastError ?? '')
      ? '; this node has no device-mapper for verity bundles: enable dm-verity in its kernel, or build plain bundles (slotflow image build --format rauc --rauc-bundle-format plain)'
      : '';
    throw new SlotDriverError(
      `'${o.rauc} install ${bundle}' failed: ${lastError ?? result.failure ?? 'unknown error'}${hint}`,
    );
  }

  return {
    name: 'rauc',
    oneShotTrial: true,
    accepts: ['file'],

    async init(initialVersion) {
      if (!(await readLedger(o.ledgerFile))) {
        const { booted } = await raucView();
        await writeLedger(o.ledgerFile, {
          v: 1,
          images: { [booted]: { version: initialVersion } },
          trial: null,
        });
      }
      const v = await view();
      if (v.ledger.trial === v.booted) return; // a trial the agent armed: never commit it here
      // The bootloader counts every boot (grub: X_TRY=1): the running committed slot confirms it,
      // as RAUC systems do with `rauc status mark-good` at boot, or the next boot passes it over.
      if (!v.good[v.booted]) await rauc('status', 'mark-good', 'booted');
      if (v.primary === null) await rauc('status', 'mark-active', 'booted');
      // A trial armed earlier that the bootloader did not keep (used try, withdrawn) is over.
      if (v.ledger.trial !== null && v.ledger.trial !== v.booted && v.primary !== v.ledger.trial)
        await setTrial(v, null);
    },

    async status(): Promise<SlotStatus> {
      const v = await view();
      const primary = v.primary ?? v.booted;
      const trial = v.ledger.trial === v.booted && primary !== v.booted;
      const armed = v.ledger.trial !== null && v.ledger.trial !== v.booted && primary === v.ledger.trial;
      return {
        booted: v.booted,
        primary,
        trial,
        next: armed ? v.ledger.trial! : undefined,
        slots: { a: imageOf(v, 'a'), b: imageOf(v, 'b') },
      };
    },

    async install(slot, source, opts) {
      if (source.type !== 'file') {
        throw new SlotDriverError(`the rauc slot driver installs bundle files, got an ${source.type} image`);
      }
      if (source.manifest.format !== 'rauc') {
        throw new ArtifactInvalidError(
          `the rauc slot driver installs RAUC bundles, image ${source.manifest.digest} is a bare ${source.manifest.format} image; build it with 'slotflow image build --format rauc'`,
        );
      }
      const v = await view();
      if (slot === v.booted)
        throw new SlotInUseError(`refusing to write slot ${slot}: the node booted from it`);
      if (v.ledger.trial !== null) await setTrial(v, null);
      // RAUC writes the slot it picks: the other one of the booted slot's pair.
      await raucInstall(source.path);
      const after = await view();
      // Without a slot status (no statusfile, a raw slot) RAUC knows no version; the ledger records it.
      if (after.versions[slot] !== undefined && after.versions[slot] !== opts.version) {
        throw new SlotDriverError(
          `rauc installed the bundle but reports version ${after.versions[slot] ?? '(none)'} in slot ${slot}, expected ${opts.version}; the bundle's manifest.raucm must carry the version the command names`,
        );
      }
      // rauc install makes the new slot primary at once; keep the running one primary until the
      // agent arms the trial, so a reboot before that changes nothing.
      await rauc('status', 'mark-active', 'booted');
      await writeLedger(o.ledgerFile, {
        ...after.ledger,
        images: { ...after.ledger.images, [slot]: { version: opts.version, digest: opts.digest } },
        trial: null,
      });
    },

    async armTrialBoot(slot) {
      const v = await view();
      if (slot === v.booted) throw new SlotInUseError(`slot ${slot} is already booted; arm the other slot`);
      requireImage(v, slot, 'arm');
      // The ledger first: a trial the bootloader may boot is always one the agent knows it armed.
      await setTrial(v, slot);
      await rauc('status', 'mark-active', v.names[slot]);
    },

    async disarm() {
      const v = await view();
      if (v.ledger.trial === null || v.ledger.trial === v.booted) return;
      await rauc('status', 'mark-active', 'booted');
      await setTrial(v, null);
    },

    async markGood(slot) {
      const v = await view();
      if (v.booted !== slot)
        throw new SlotDriverError(`cannot commit slot ${slot}: the node booted slot ${v.booted}`);
      await rauc('status', 'mark-good', 'booted');
      await rauc('status', 'mark-active', 'booted');
      await setTrial(v, null);
    },

    async markBad(slot) {
      const v = await view();
      await rauc('status', 'mark-bad', v.names[slot]);
      if (v.ledger.trial === slot) await setTrial(v, null);
    },

    async activate(slot) {
      const v = await view();
      requireImage(v, slot, 'activate');
      await rauc('status', 'mark-active', v.names[slot]);
      await setTrial(v, null);
    },
  };
}
