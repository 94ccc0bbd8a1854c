import { readFile, realpath } from 'node:fs/promises';
import type { Slot } from '../../schema/index.ts';
import { SlotDriverError } from '../errors.ts';
import { slotOfBootname } from './grub-env.ts';

/** The `name=value` parameters of a kernel command line (the last one wins, as for the kernel). */
export function cmdlineParams(cmdline: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const word of cmdline.trim().split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq > 0) params.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return params;
}

async function samePath(a: string, b: string): Promise<boolean> {
  if (a === b) return true;
  const [ra, rb] = await Promise.all([realpath(a).catch(() => a), realpath(b).catch(() => b)]);
  return ra === rb;
}

/** The device a `root=` value names, as a path (`PARTLABEL=x` → /dev/disk/by-partlabel/x). */
function rootDevice(root: string): string | undefined {
  if (root.startsWith('/dev/')) return root;
  const [kind, value] = [root.slice(0, root.indexOf('=')), root.slice(root.indexOf('=') + 1)];
  const dir = { PARTLABEL: 'by-partlabel', PARTUUID: 'by-partuuid', LABEL: 'by-label', UUID: 'by-uuid' }[
    kind
  ];
  return dir && value ? `/dev/disk/${dir}/${value}` : undefined;
}

/**
 * The slot the running system booted, from the kernel command line: `rauc.slot=A|B` (which the
 * project's grub.cfg passes), else the `root=` device compared with the slots' devices. The
 * running kernel is the only witness of what booted; the environment block says what GRUB
 * intended.
 */
export async function bootedSlotFromCmdline(file: string, devices: Record<Slot, string>): Promise<Slot> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SlotDriverError(`cannot read the kernel command line ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const params = cmdlineParams(text);
  const named = params.get('rauc.slot');
  if (named !== undefined) {
    const slot = slotOfBootname(named);
    if (!slot) throw new SlotDriverError(`${file} says rauc.slot=${named}; expected rauc.slot=A or B`);
    return slot;
  }
  const root = params.get('root');
  const device = root === undefined ? undefined : rootDevice(root);
  if (device !== undefined) {
    for (const slot of ['a', 'b'] as const) if (await samePath(device, devices[slot])) return slot;
  }
  throw new SlotDriverError(
    `cannot tell which slot booted: ${file} has no rauc.slot=A|B and its root=${root ?? '(none)'} is neither ${devices.a} nor ${devices.b}; boot with the project's grub.cfg (deploy/grub/grub.cfg), which passes rauc.slot=`,
  );
}
