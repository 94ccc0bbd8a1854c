// RAUC's GRUB protocol: the variables grub.cfg and the running system share in the GRUB
// environment block, so a RAUC-managed device and slotflow read and write them alike.
//   ORDER  the slots' boot names in boot order, e.g. "A B"
//   X_OK   1: slot X may boot; 0: it may not (empty, being written, or marked bad)
//   X_TRY  GRUB sets it to 1 when it boots X and skips X while it is 1; the booted system sets
//          it back to 0 once the boot is good. A boot that never reports back is not repeated.
import type { Slot } from '../../schema/index.ts';
import { SlotDriverError } from '../errors.ts';

/** The protocol's view of one environment block. */
export interface GrubBootEnv {
  /** Slots in the order GRUB tries them (as ORDER lists them). */
  readonly order: readonly Slot[];
  /** X_OK = 1 */
  readonly ok: Readonly<Record<Slot, boolean>>;
  /** X_TRY = 1: GRUB booted the slot and nobody has confirmed that boot since. */
  readonly tried: Readonly<Record<Slot, boolean>>;
}

const BOOTNAME = { a: 'A', b: 'B' } as const satisfies Record<Slot, string>;
const SLOT_OF: Readonly<Record<string, Slot>> = { A: 'a', B: 'b' };

/** The slot's boot name in the protocol (`A`, `B`), as ORDER and `rauc.slot=` spell it. */
export function bootname(slot: Slot): 'A' | 'B' {
  return BOOTNAME[slot];
}

/** The slot a boot name stands for; undefined for anything but `A` and `B`. */
export function slotOfBootname(name: string): Slot | undefined {
  return SLOT_OF[name];
}

/** Parses the `NAME=value` lines `grub-editenv FILE list` prints. */
export function parseEditenvList(out: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return vars;
}

function flag(vars: Record<string, string>, name: string, file: string): boolean {
  const value = vars[name];
  if (value === undefined || value === '0') return false;
  if (value === '1') return true;
  throw new SlotDriverError(`${file}: ${name}=${value}, expected 0 or 1 (RAUC's GRUB protocol)`);
}

/**
 * The boot state in an environment block's variables; undefined when it has no ORDER yet (a
 * fresh block). Throws SlotDriverError for values outside the protocol.
 */
export function readBootEnv(vars: Record<string, string>, file: string): GrubBootEnv | undefined {
  const order = vars['ORDER'];
  if (order === undefined) return undefined;
  const slots: Slot[] = [];
  for (const name of order.split(' ').filter(Boolean)) {
    const slot = slotOfBootname(name);
    if (!slot || slots.includes(slot)) {
      throw new SlotDriverError(
        `${file}: ORDER="${order}", expected the boot names A and B once each, e.g. "A B"`,
      );
    }
    slots.push(slot);
  }
  return {
    order: slots,
    ok: { a: flag(vars, 'A_OK', file), b: flag(vars, 'B_OK', file) },
    tried: { a: flag(vars, 'A_TRY', file), b: flag(vars, 'B_TRY', file) },
  };
}

/** The `NAME=value` arguments of one `grub-editenv FILE set` that writes the whole state. */
export function bootEnvAssignments(env: GrubBootEnv): string[] {
  const bit = (b: boolean) => (b ? '1' : '0');
  return [
    `ORDER=${env.order.map(bootname).join(' ')}`,
    `A_OK=${bit(env.ok.a)}`,
    `B_OK=${bit(env.ok.b)}`,
    `A_TRY=${bit(env.tried.a)}`,
    `B_TRY=${bit(env.tried.b)}`,
  ];
}

/** `env` with `slot` first in ORDER (and the other slot after it). */
export function withFirst(env: GrubBootEnv, slot: Slot): GrubBootEnv {
  return { ...env, order: [slot, slot === 'a' ? 'b' : 'a'] };
}

/** `env` with one slot's flags changed. */
export function withFlags(
  env: GrubBootEnv,
  slot: Slot,
  flags: { readonly ok?: boolean; readonly tried?: boolean },
): GrubBootEnv {
  return {
    ...env,
    ok: flags.ok === undefined ? env.ok : { ...env.ok, [slot]: flags.ok },
    tried: flags.tried === undefined ? env.tried : { ...env.tried, [slot]: flags.tried },
  };
}
