// Power-cut campaigns on lab VMs: where in an upgrade to pull the plug, what must hold after
// power comes back, and the event chain an upgrade must leave in the log whatever happened.
// Killing QEMU loses the guest's page cache and every write in flight, as a real power loss does,
// which a SIGKILL of the agent never shows.

/** The moments of an upgrade a campaign cuts power at, in the order an upgrade reaches them. */
export const CutPoint = {
  /** While the image is fetched (after the agent accepted the command). */
  fetching: 'fetching',
  /** While the passive slot is written (after the image was verified). */
  writing: 'writing',
  /** Around arming the trial boot (right after the slot was written). */
  arming: 'arming',
  /** During the reboot: the old system shutting down, firmware, GRUB, the trial kernel. */
  rebooting: 'rebooting',
  /** While the trial boot's health checks run, before the commit. */
  healthCheck: 'health-check',
  /** Just after the commit was reported. */
  committed: 'committed',
} as const;
export type CutPoint = (typeof CutPoint)[keyof typeof CutPoint];

/** Cut points after which the upgrade goes on where it stopped (the trial boot is not spent yet). */
export const RESUMABLE: readonly CutPoint[] = [CutPoint.fetching, CutPoint.writing, CutPoint.arming];
/** Cut points that end an upgrade one way or the other (at most one per upgrade, last). */
export const FINAL: readonly CutPoint[] = [CutPoint.rebooting, CutPoint.healthCheck, CutPoint.committed];

/**
 * The event that opens each cut point's window, and the range of seconds to wait after it before
 * the cut (drawn at random, so a campaign lands at different instants of each phase).
 */
export const CUT_WINDOW: Readonly<Record<CutPoint, { after: string; minS: number; maxS: number }>> = {
  fetching: { after: 'UpgradeCommandAccepted', minS: 1, maxS: 12 },
  writing: { after: 'ArtifactFetched', minS: 0, maxS: 4 },
  arming: { after: 'SlotWritten', minS: 0, maxS: 0.8 },
  rebooting: { after: 'NodeRebooting', minS: 1, maxS: 20 },
  'health-check': { after: 'NodeBooted', minS: 0, maxS: 1.5 },
  committed: { after: 'UpgradeCommitted', minS: 0, maxS: 2 },
};

/** A small, fast PRNG (mulberry32): the same seed gives the same campaign. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One planned cut: where, and how long after its window opens. */
export interface PlannedCut {
  readonly point: CutPoint;
  readonly delayMs: number;
}

/**
 * The cuts for one upgrade: one or two resumable points (in upgrade order), then, most of the
 * time, one final point. Never empty.
 */
export function planUpgradeCuts(random: () => number): PlannedCut[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const resumable = RESUMABLE.filter(() => random() < 0.55);
  if (resumable.length === 0) resumable.push(pick(RESUMABLE));
  const points: CutPoint[] = [...resumable];
  if (random() < 0.75) points.push(pick(FINAL));
  return points.map((point) => {
    const w = CUT_WINDOW[point];
    return { point, delayMs: Math.round((w.minS + random() * (w.maxS - w.minS)) * 1000) };
  });
}

/** The events an upgrade that ended this way must have left, in order, whatever cut it. */
export const REQUIRED_CHAIN = {
  committed: [
    'UpgradeCommandAccepted',
    'ArtifactFetched',
    'SlotWritten',
    'TrialBootArmed',
    'NodeRebooting',
    'NodeBooted',
    'HealthCheckPassed',
    'UpgradeCommitted',
  ],
  fellBackAfterTrial: [
    'UpgradeCommandAccepted',
    'ArtifactFetched',
    'SlotWritten',
    'TrialBootArmed',
    'NodeRebooting',
    'NodeBooted',
    'HealthCheckFailed',
    'NodeFellBack',
  ],
} as const;

/**
 * The entries of `required` that `types` (one upgrade's events, in log order) lacks as an ordered
 * subsequence: a lost event shows up here; repeats (an outbox re-sent after a cut) do not.
 */
export function missingFromChain(types: readonly string[], required: readonly string[]): string[] {
  const missing: string[] = [];
  let at = 0;
  for (const want of required) {
    const found = types.indexOf(want, at);
    if (found < 0) missing.push(want);
    else at = found + 1;
  }
  return missing;
}

/** What one cut of a campaign did, for its report. */
export interface CutRecord {
  readonly vm: string;
  readonly upgrade: string;
  readonly planned: CutPoint;
  /** The last event of the upgrade the host had seen when it cut the power. */
  readonly lastEventBefore: string | undefined;
  /** Seconds from power-on to the guest's init announcing its slot. */
  readonly bootSeconds: number;
  /** The slot the guest came up on after the cut; undefined when it never reached userspace. */
  readonly bootedSlot: string | undefined;
  /**
   * GRUB found no slot that may boot and restarted with fresh tries on the way: with good images
   * only, that never happens while the boot environment is right.
   */
  readonly triesReset: boolean;
}

/** How one upgrade of a campaign ended. */
export interface UpgradeRecord {
  readonly vm: string;
  readonly upgrade: string;
  readonly cuts: readonly CutRecord[];
  readonly outcome: 'committed' | 'fell-back';
  /** Required events the log lacks (must be empty). */
  readonly missingEvents: readonly string[];
  /** The slot the VM runs at the end, and the one its outcome calls for. */
  readonly finalSlot: string;
  readonly expectedSlot: string;
}

/** The campaign's figures: what a report (or a test) states. */
export function summarize(upgrades: readonly UpgradeRecord[], seed: number) {
  const cuts = upgrades.flatMap((u) => u.cuts);
  const byPoint: Record<string, number> = {};
  for (const c of cuts) byPoint[c.planned] = (byPoint[c.planned] ?? 0) + 1;
  return {
    seed,
    cuts: cuts.length,
    byPoint,
    upgrades: upgrades.length,
    committed: upgrades.filter((u) => u.outcome === 'committed').length,
    fellBack: upgrades.filter((u) => u.outcome === 'fell-back').length,
    unbootable: cuts.filter((c) => c.bootedSlot === undefined).length,
    triesReset: cuts.filter((c) => c.triesReset).length,
    lostEvents: upgrades.reduce((n, u) => n + u.missingEvents.length, 0),
    wrongSlot: upgrades.filter((u) => u.finalSlot !== u.expectedSlot).length,
    maxBootSeconds: Math.max(0, ...cuts.map((c) => c.bootSeconds)),
  };
}
