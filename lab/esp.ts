import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheKey, cachedDir, fileDigest } from './cache.ts';
import { runTool } from './tools.ts';

/** GRUB's x86_64-efi modules on a Debian host (package grub-efi-amd64-bin). */
export const GRUB_EFI_MODULES_DIR = '/usr/lib/grub/x86_64-efi';

/**
 * The GRUB configuration the lab boots with: the project's own A/B slot selection
 * (deploy/grub/grub.cfg), the one a real node installs, so the lab proves what ships.
 */
export const LAB_GRUB_CFG = new URL('../deploy/grub/grub.cfg', import.meta.url).pathname;
// Built into BOOTX64.EFI: finds the ESP holding the lab's grub.cfg and reads it. GRUB parses it
// before `normal` is loaded, where a `#` line is an unknown command, so the file has no comments.
const EARLY_CFG = new URL('./grub/early.cfg', import.meta.url).pathname;

/** Where grub.cfg lives on the ESP; the early config searches for it there. */
export const ESP_GRUB_DIR = '/EFI/slotflow';
/**
 * The GRUB environment block at the ESP's root, where the project's grub.cfg and the agent's
 * grub slot driver (envFile /boot/efi/grubenv, with the ESP on /boot/efi) expect it.
 */
export const ESP_GRUBENV = '/grubenv';
/** The same block as the guest sees it. */
export const GUEST_GRUBENV = `/boot/efi${ESP_GRUBENV}`;

/**
 * Modules built into GRUB's EFI image: GPT, FAT (the ESP), squash4 and ext2 (read squashfs and ext4 slots), the
 * environment block, the script commands the configuration uses, and the Linux loader.
 */
export const GRUB_MODULES = [
  'part_gpt',
  'fat',
  'ext2',
  'squash4',
  'normal',
  'configfile',
  'linux',
  'loadenv',
  'test',
  'echo',
  'search',
  'search_fs_file',
  'search_label',
  'sleep',
  'halt',
  'reboot',
  'efi_gop',
] as const;

/** The environment a fresh machine starts with: slot A good and first, slot B not yet installed. */
export const INITIAL_GRUBENV = { ORDER: 'A B', A_OK: '1', A_TRY: '0', B_OK: '0', B_TRY: '0' } as const;

const ESP_MIB = 32;
// FAT volume id, fixed so the same inputs give the same bytes.
const VOLUME_ID = '5107f10a';

/** Size of the ESP partition image in MiB. */
export const ESP_SIZE_MIB = ESP_MIB;

/**
 * Builds (or takes from the cache) the ESP image: a FAT file system, made without mounting, with
 * GRUB as the removable-media boot loader /EFI/BOOT/BOOTX64.EFI (modules and an early
 * configuration built in), the A/B grub.cfg and a grubenv made by grub-editenv. Returns its path.
 */
export async function buildEsp(cacheRoot: string, grubCfg = LAB_GRUB_CFG): Promise<string> {
  const key = cacheKey([
    'esp/1',
    await fileDigest(grubCfg),
    await fileDigest(EARLY_CFG),
    await fileDigest(join(GRUB_EFI_MODULES_DIR, 'kernel.img')).catch(() => 'no-grub'),
    GRUB_MODULES.join(','),
    JSON.stringify(INITIAL_GRUBENV),
  ]);
  const { dir } = await cachedDir(cacheRoot, 'esp', key, async (out) => {
    const efi = join(out, 'BOOTX64.EFI');
    await runTool(
      'grub-mkimage',
      [
        '-O',
        'x86_64-efi',
        '-d',
        GRUB_EFI_MODULES_DIR,
        '-o',
        efi,
        '-p',
        ESP_GRUB_DIR,
        '-c',
        EARLY_CFG,
        ...GRUB_MODULES,
      ],
      'building GRUB for EFI',
    );
    const env = join(out, 'grubenv');
    await runTool('grub-editenv', [env, 'create'], 'creating the GRUB environment block');
    await runTool(
      'grub-editenv',
      [env, 'set', ...Object.entries(INITIAL_GRUBENV).map(([k, v]) => `${k}=${v}`)],
      'writing the initial GRUB environment',
    );
    const cfg = join(out, 'grub.cfg');
    await writeFile(cfg, await readFile(grubCfg));

    const image = join(out, 'esp.img');
    await runTool(
      'mkfs.vfat',
      ['-C', '-n', 'ESP', '-i', VOLUME_ID, image, String(ESP_MIB * 1024)],
      'making the ESP',
    );
    const mtools = { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } };
    await runTool(
      'mmd',
      ['-i', image, '::/EFI', '::/EFI/BOOT', `::${ESP_GRUB_DIR}`],
      'making ESP folders',
      mtools,
    );
    for (const [file, dest] of [
      [efi, '/EFI/BOOT/BOOTX64.EFI'],
      [cfg, `${ESP_GRUB_DIR}/grub.cfg`],
      [env, ESP_GRUBENV],
    ] as const) {
      await runTool('mcopy', ['-i', image, file, `::${dest}`], `copying ${dest} onto the ESP`, mtools);
    }
    await rm(efi);
  });
  return join(dir, 'esp.img');
}
