import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { Slot, describeIssues } from '../../schema/index.ts';
import { writeFileAtomic } from '../atomic-file.ts';
import { SlotDriverError } from '../errors.ts';

// The `file` driver's bootloader: a small state file that plays the part of the GRUB
// environment or the barebox/U-Boot boot counters on a real device.

/** The boot-state file of the `file` driver. */
export const BootState = z.object({
  v: z.literal(1),
  /** The committed slot: what boots when no trial is armed. */
  active: Slot,
  /** One-shot slot for the next boot(s), cleared when its tries run out. */
  next: Slot.nullable(),
  /** Boots left for `next`. */
  tries: z.number().int().nonnegative(),
  /** What the firmware booted last time. */
  booted: Slot,
  /** The last boot was a trial of `next`. */
  trial: z.boolean(),
  /** Slots that failed a trial; never booted until rewritten. */
  bad: z.array(Slot),
});
export type BootState = z.infer<typeof BootState>;

/** The boot-state file in a slots directory. */
export function bootStateFile(slotsDir: string): string {
  return join(slotsDir, 'boot-state.json');
}

/** Reads the boot state; undefined when the node has none yet. */
export async function readBootState(slotsDir: string): Promise<BootState | undefined> {
  const file = bootStateFile(slotsDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SlotDriverError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SlotDriverError(`${file} is not JSON; it is written atomically, so check the disk`, {
      cause: err,
    });
  }
  const parsed = BootState.safeParse(raw);
  if (!parsed.success) {
    throw new SlotDriverError(
      `${file} is not a boot state: ${describeIssues(parsed.error.issues, raw).join('; ')}`,
    );
  }
  return parsed.data;
}

/** Writes the boot state atomically. */
export async function writeBootState(slotsDir: string, state: BootState): Promise<void> {
  await writeFileAtomic(bootStateFile(slotsDir), JSON.stringify(state));
}

/**
 * Pure: what the firmware does at power-on. An armed one-shot slot boots as a trial and uses a
 * try; otherwise the active slot boots. So an uncommitted trial falls back at the next boot.
 */
export function firmwareBoot(state: BootState): BootState {
  if (state.next !== null && state.tries > 0 && !state.bad.includes(state.next)) {
    const tries = state.tries - 1;
    return { ...state, booted: state.next, trial: true, tries, next: tries > 0 ? state.next : null };
  }
  return { ...state, booted: state.active, trial: false, next: null, tries: 0 };
}

/** Runs the simulated firmware over the boot-state file (the `simulate` reboot's power-on); returns the booted slot. */
export async function bootFromFile(slotsDir: string): Promise<Slot | undefined> {
  const state = await readBootState(slotsDir);
  if (!state) return undefined;
  const booted = firmwareBoot(state);
  await writeBootState(slotsDir, booted);
  return booted.booted;
}
