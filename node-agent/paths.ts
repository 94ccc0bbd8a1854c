import { join } from 'node:path';

/** Where the agent keeps its state inside its data directory (it writes nowhere else). */
export interface AgentPaths {
  readonly dataDir: string;
  /** The versioned state-machine journal with its outbox. */
  readonly journal: string;
  /** Pid of the agent that holds the directory. */
  readonly lock: string;
  /** Downloads being fetched and verified, never booted from. */
  readonly staging: string;
  /** The `file` slot driver's images and boot-state file. */
  readonly slots: string;
  /** The `grub`, `kairos` and `rauc` drivers' record of what each slot holds. */
  readonly slotLedger: string;
  /** Signed rollout plans held for the peer-to-peer fallback (kept across reboots). */
  readonly plans: string;
  /** Control-plane keys announced or revoked by key commands since the bootstrap trust. */
  readonly trustedKeys: string;
  /** The anti-rollback floor: the newest version the node committed. */
  readonly versionFloor: string;
}

/** The layout of a data directory. */
export function agentPaths(dataDir: string): AgentPaths {
  return {
    dataDir,
    journal: join(dataDir, 'journal.json'),
    lock: join(dataDir, 'agent.pid'),
    staging: join(dataDir, 'staging'),
    slots: join(dataDir, 'slots'),
    slotLedger: join(dataDir, 'slot-ledger.json'),
    plans: join(dataDir, 'plans.json'),
    trustedKeys: join(dataDir, 'trusted-keys.json'),
    versionFloor: join(dataDir, 'version-floor.json'),
  };
}

/** The staging file of an image, named by the hex of its digest. */
export function stagingFile(paths: AgentPaths, digest: string): string {
  return join(paths.staging, `${digest.replace(/^sha256:/, '')}.img`);
}
