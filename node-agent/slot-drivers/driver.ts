import type { ArtifactManifest, Digest, Slot } from '../../schema/index.ts';

/** What one slot holds, as far as the driver knows. */
export interface SlotInfo {
  readonly version: string;
  readonly digest?: Digest | undefined;
  /** Marked bad after a failed trial; never booted again until rewritten. */
  readonly bad?: boolean | undefined;
}

/** The boot situation of the node. */
export interface SlotStatus {
  /** The slot the running system booted from. */
  readonly booted: Slot;
  /** The slot the node boots by default (the committed one). */
  readonly primary: Slot;
  /** The running boot is an uncommitted trial: the next boot returns to `primary` unless committed. */
  readonly trial: boolean;
  /** A one-shot trial armed for the next boot, if any. */
  readonly next?: Slot | undefined;
  /** Contents of each slot; undefined when empty or unknown. */
  readonly slots: Readonly<Record<Slot, SlotInfo | undefined>>;
}

/** What to install: a verified local image file, or an OCI image the tool pulls itself. */
export type InstallSource =
  | { readonly type: 'file'; readonly path: string; readonly manifest: ArtifactManifest }
  | { readonly type: 'oci'; readonly reference: string; readonly digest: Digest };

/** Options of one install. */
export interface InstallOptions {
  readonly version: string;
  readonly digest: Digest;
  readonly signal?: AbortSignal;
  /** Called with the bytes written so far (for metrics). */
  readonly onProgress?: (bytes: number) => void;
}

/**
 * One contract for every way of writing and booting A/B slots. Every implementation passes the
 * shared compliance suite (test/agent/slot-driver-compliance.ts). A driver never writes the slot
 * the node booted from, and never arms or activates a slot that holds nothing.
 */
export interface SlotDriver {
  readonly name: 'file' | 'grub' | 'kairos' | 'rauc';
  /**
   * True when an armed trial boots exactly once (an uncommitted trial falls back at the next
   * boot); false when the bootloader retries it a few times first (RAUC's boot attempts).
   */
  readonly oneShotTrial: boolean;
  /** Image kinds this driver installs. */
  readonly accepts: readonly InstallSource['type'][];
  /**
   * Runs at every agent start: prepares first use (e.g. the boot-state file of a fresh node)
   * and, where the bootloader counts every boot (grub), confirms the boot of a committed slot.
   * Never commits a trial. Idempotent.
   */
  init(initialVersion: string): Promise<void>;
  status(): Promise<SlotStatus>;
  /** Writes the image into `slot`; throws SlotInUseError for the booted slot. */
  install(slot: Slot, source: InstallSource, options: InstallOptions): Promise<void>;
  /** Boots `slot` once on the next boot; the one after returns to the primary slot. */
  armTrialBoot(slot: Slot): Promise<void>;
  /** Withdraws an armed trial. */
  disarm(): Promise<void>;
  /** Commits the booted trial `slot`: it becomes the primary. */
  markGood(slot: Slot): Promise<void>;
  /** Marks `slot` bad so it is not booted again. */
  markBad(slot: Slot): Promise<void>;
  /** Makes `slot` the primary for every following boot (rollback, fallback). */
  activate(slot: Slot): Promise<void>;
}

/** The version and digest the node runs, from a status. */
export function bootedImage(
  status: SlotStatus,
  fallbackVersion: string,
): { version: string; digest?: Digest } {
  const info = status.slots[status.booted];
  return { version: info?.version ?? fallbackVersion, ...(info?.digest ? { digest: info.digest } : {}) };
}
