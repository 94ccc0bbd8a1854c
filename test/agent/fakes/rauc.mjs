/* global process */
// Recording fake of rauc: `status --output-format=json`, `install BUNDLE`,
// `status mark-good|mark-bad|mark-active booted|other|rootfs.N`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJson, start, writeJson } from './fake-common.mjs';

const NAMES = { A: 'rootfs.0', B: 'rootfs.1' };
const { state, args, hanging } = start('rauc');
if (!hanging) {
  const file = join(state, 'rauc.json');
  const r = readJson(file, { booted: 'A', primary: 'A', status: { A: 'good', B: 'good' } });
  const other = (b) => (b === 'A' ? 'B' : 'A');
  const resolve = (which) =>
    which === 'booted'
      ? r.booted
      : which === 'other'
        ? other(r.booted)
        : Object.keys(NAMES).find((b) => NAMES[b] === which);
  if (args[0] === 'status' && args[1] === '--output-format=json') {
    process.stdout.write(
      JSON.stringify({
        compatible: 'slotflow-test',
        booted: r.booted,
        boot_primary: NAMES[r.primary],
        slots: Object.entries(NAMES).map(([bootname, name]) => ({
          [name]: {
            class: 'rootfs',
            bootname,
            state: bootname === r.booted ? 'booted' : 'inactive',
            boot_status: r.status[bootname],
          },
        })),
      }),
    );
  } else if (args[0] === 'install' && args[1]) {
    if (!existsSync(args[1])) {
      process.stderr.write(`rauc: bundle ${args[1]} not found\n`);
      process.exit(1);
    }
    const target = other(r.booted);
    r.status[target] = 'good';
    r.primary = target;
    writeJson(file, r);
  } else if (args[0] === 'status' && ['mark-good', 'mark-bad', 'mark-active'].includes(args[1])) {
    const slot = resolve(args[2] ?? 'booted');
    if (!slot) {
      process.stderr.write(`rauc: no slot ${args[2]}\n`);
      process.exit(1);
    }
    if (args[1] === 'mark-good') r.status[slot] = 'good';
    if (args[1] === 'mark-bad') {
      r.status[slot] = 'bad';
      if (r.primary === slot) r.primary = other(slot);
    }
    if (args[1] === 'mark-active') {
      r.primary = slot;
      r.status[slot] = 'good';
    }
    writeJson(file, r);
  } else {
    process.stderr.write(`rauc fake: unsupported arguments ${args.join(' ')}\n`);
    process.exit(2);
  }
}
