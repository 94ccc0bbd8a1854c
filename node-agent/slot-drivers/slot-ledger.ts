import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { Digest, Slot, describeIssues } from '../../schema/index.ts';
import { writeFileAtomic } from '../atomic-file.ts';
import { SlotDriverError } from '../errors.ts';

// kairos, rauc and grub know which slot booted but not which slotflow version each slot holds
// (the version is in the signed manifest, not in the image); the agent keeps that here.

const Image = z.object({ version: z.string().min(1), digest: Digest.optional() });

/** The agent's record of what each slot holds, plus driver-specific fields. */
export const SlotLedger = z.object({
  v: z.literal(1),
  images: z.object({ a: Image.optional(), b: Image.optional() }),
  /** kairos: which Kairos boot entry each slot is (`cos` = active, `fallback` = passive). */
  entries: z.object({ a: z.enum(['cos', 'fallback']), b: z.enum(['cos', 'fallback']) }).optional(),
  /**
   * kairos: `kairos-agent upgrade` moves the running image from `cos` to `fallback` under the
   * running system. Until the next boot, the running slot is found with the entries it booted with.
   */
  swap: z
    .object({
      bootId: z.string(),
      entries: z.object({ a: z.enum(['cos', 'fallback']), b: z.enum(['cos', 'fallback']) }),
    })
    .nullable()
    .default(null),
  /** rauc, grub: the slot armed for a trial and not yet committed. */
  trial: Slot.nullable().default(null),
  /**
   * grub: slots marked bad after a failed trial. The environment block's `X_OK=0` says only
   * "do not boot"; it is also how a freshly written, unarmed slot looks.
   */
  bad: z.array(Slot).default([]),
});
export type SlotLedger = z.output<typeof SlotLedger>;
/** A ledger to write; fields with defaults may be left out. */
export type SlotLedgerInput = z.input<typeof SlotLedger>;

/** Reads the ledger; undefined when there is none yet. */
export async function readLedger(file: string): Promise<SlotLedger | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SlotDriverError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const raw: unknown = JSON.parse(text);
  const parsed = SlotLedger.safeParse(raw);
  if (!parsed.success) {
    throw new SlotDriverError(
      `${file} is not a slot ledger: ${describeIssues(parsed.error.issues, raw).join('; ')}`,
    );
  }
  return parsed.data;
}

/** Reads the ledger or fails with a hint to run init. */
export async function requireLedger(file: string): Promise<SlotLedger> {
  const ledger = await readLedger(file);
  if (!ledger) throw new SlotDriverError(`no slot ledger at ${file}; the agent creates it at start (init)`);
  return ledger;
}

/** Writes the ledger atomically. */
export async function writeLedger(file: string, ledger: SlotLedgerInput): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(ledger));
}
