import type { PlanRequest } from '../activities/index.ts';
import type { Digest, ImageSource, RolloutSpec, Threshold } from '../schema/index.ts';

// What a site may do on its own when it loses the control plane mid-rollout: the signed plan
// the rollout re-issues as each wave starts. Pure, so the rollout stays deterministic.

/**
 * The waves a site may finish by itself from wave `index`: the nodes of that wave not started
 * yet, in the order the rollout starts them, then the later waves up to (not including) the
 * first one that waits for an operator's approval. Empty when nothing is left to start.
 */
export function fallbackWaves(
  waves: readonly (readonly string[])[],
  index: number,
  pending: (nodeId: string) => boolean,
  approveWaves: boolean,
): string[][] {
  const out: string[][] = [];
  for (let w = index; w < waves.length; w++) {
    // A wave after the first here starts only once an operator approved the one before it.
    if (w > index && approveWaves) break;
    const nodes = (waves[w] ?? []).filter(pending);
    // Plan waves map to rollout waves by position, so an empty one ends the plan.
    if (nodes.length === 0) break;
    out.push(nodes);
  }
  return out;
}

/**
 * The failures a site may still tolerate: a count shrinks by the failures the rollout already
 * charged against it; a percentage is judged over the plan's own nodes.
 */
export function remainingThreshold(threshold: Threshold, failedSoFar: number): Threshold {
  return threshold.type === 'count'
    ? { type: 'count', count: Math.max(0, threshold.count - Math.max(0, failedSoFar)) }
    : threshold;
}

/** Everything the issuePlan activity needs for the plan that starts at wave `index`. */
export function planRequest({
  spec,
  index,
  waves,
  image,
  manifestDigest,
  failedSoFar,
  withdraw,
}: {
  spec: RolloutSpec;
  index: number;
  waves: string[][];
  image: ImageSource;
  manifestDigest: Digest;
  failedSoFar: number;
  /** Publish the plan without the upgrade, so holders of an earlier one start nothing. */
  withdraw: boolean;
}): PlanRequest {
  return {
    rolloutId: spec.id,
    firstWave: index,
    waves,
    maxUnavailable: spec.maxUnavailable,
    failureThreshold: remainingThreshold(spec.failureThreshold, failedSoFar),
    manifestDigest,
    ...(withdraw
      ? {}
      : { upgrade: { image, manifestDigest, allowDowngrade: spec.allowDowngrade, healthChecks: [] } }),
    // A turn holds the lease from the reboot to the end of the health checks ...
    leaseTtlMs: spec.timeouts.reboot + spec.timeouts.health,
    // ... and may open as late as the node takes to accept and write the passive slot.
    startWindowMs: spec.timeouts.accept + spec.timeouts.write,
    ...(spec.maintenanceWindow ? { maintenanceWindow: spec.maintenanceWindow } : {}),
  };
}

/** A short description of a plan for the Temporal UI, e.g. `waves 2-3, 45 nodes`. */
export function describePlan(firstWave: number, waves: readonly (readonly string[])[]): string {
  const nodes = waves.reduce((n, w) => n + w.length, 0);
  const last = firstWave + waves.length;
  const span = waves.length === 1 ? `wave ${firstWave + 1}` : `waves ${firstWave + 1}-${last}`;
  return `${span}, ${nodes} node${nodes === 1 ? '' : 's'}`;
}
