// The VM lab's public surface: build a lab disk, clone it per VM, boot it under QEMU.
export { labCacheRoot } from './cache.ts';
export { bootsIn, BOOT_MARKER, type ConsoleBoot } from './console.ts';
export { buildLabDisk, cloneDisk, type LabDisk, type LabDiskOptions } from './lab-disk.ts';
export { ESP_GRUB_DIR, ESP_GRUBENV, GUEST_GRUBENV, INITIAL_GRUBENV, LAB_GRUB_CFG } from './esp.ts';
export { LabBuildError, LabVmError } from './errors.ts';
export { readDiskGrubenv } from './grubenv.ts';
export {
  GUEST_GATEWAY_HOST,
  startVm,
  type GuestForward,
  type HostForward,
  type LabVm,
  type VmSpec,
} from './qemu.ts';
