import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Command, RolloutPlan, SignedPlan } from '../schema/index.ts';
import { verifyPlan, type TrustedKeys } from '../signing/index.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { describeError } from './errors.ts';

/** The signed rollout plans a node holds: the newest per rollout, verified, kept across reboots. */
export interface PlanBook {
  /**
   * Keeps a plan when its signature checks out, it has not expired and it is newer than the one
   * held for its rollout. Returns the verified plan when it was kept, undefined otherwise.
   */
  offer(input: unknown): Promise<SignedPlan | undefined>;
  /** The plan held for a rollout (still valid), if any. */
  get(rolloutId: string): SignedPlan | undefined;
  /** Every valid plan held. */
  all(): SignedPlan[];
}

/** The command id a plan's upgrade stands for: the one the rollout's node workflow sends. */
export function plannedCommandId(rolloutId: string, nodeId: string): string {
  return `${rolloutId}:${nodeId}:upgrade`;
}

/** Whether a plan lists the node in one of its waves. */
export function planLists(plan: RolloutPlan, nodeId: string): boolean {
  return plan.waves.some((wave) => wave.includes(nodeId));
}

/**
 * The Upgrade command a plan authorises for one node, as the rollout would have sent it: same
 * command id, valid as long as the plan, with a nonce derived from the plan's signature (so it
 * is used once). Only for a plan that verified and lists the node.
 */
export function plannedUpgrade(signed: SignedPlan, nodeId: string): Command | undefined {
  const { plan } = signed;
  if (!plan.upgrade || !planLists(plan, nodeId)) return undefined;
  const nonce = `plan-${createHash('sha256').update(signed.signature).update(nodeId).digest('base64url').slice(0, 40)}`;
  return {
    v: 1,
    type: 'Upgrade',
    commandId: plannedCommandId(plan.rolloutId, nodeId),
    nonce,
    issuedAt: plan.issuedAt,
    expiresAt: plan.expiresAt,
    nodeId,
    rolloutId: plan.rolloutId,
    image: plan.upgrade.image,
    manifestDigest: plan.upgrade.manifestDigest,
    allowDowngrade: plan.upgrade.allowDowngrade,
    healthChecks: plan.upgrade.healthChecks,
  };
}

/** Opens the plan book in `file` (plans that no longer verify or have expired are dropped). */
export async function openPlanBook(init: {
  file: string;
  trustedKeys: TrustedKeys;
  log: Logger;
  now?: () => Date;
}): Promise<PlanBook> {
  const { log } = init;
  const now = init.now ?? (() => new Date());
  const plans = new Map<string, SignedPlan>();
  const valid = (signed: SignedPlan) => verifyPlan(signed, { trustedKeys: init.trustedKeys, now: now() });

  let saved: unknown[] = [];
  try {
    saved = JSON.parse(await readFile(init.file, 'utf8')) as unknown[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      log.warn({ err: describeError(err), file: init.file }, 'cannot read the held plans; starting without');
  }
  for (const item of Array.isArray(saved) ? saved : []) {
    const v = verifyPlan(item, { trustedKeys: init.trustedKeys, now: now() });
    if (v.ok) plans.set(v.plan.rolloutId, v.signed);
  }

  let writing: Promise<void> = Promise.resolve();
  const save = () => {
    const text = JSON.stringify([...plans.values()]);
    writing = writing
      .then(() => writeFileAtomic(init.file, text))
      .catch((err: unknown) => log.warn({ err: describeError(err) }, 'cannot save the held plans'));
    return writing;
  };

  return {
    async offer(input) {
      const v = verifyPlan(input, { trustedKeys: init.trustedKeys, now: now() });
      if (!v.ok) {
        log.warn({ reason: v.reason, message: v.message }, 'rollout plan refused');
        return undefined;
      }
      const held = plans.get(v.plan.rolloutId);
      if (held && Date.parse(held.plan.issuedAt) >= Date.parse(v.plan.issuedAt)) return undefined;
      plans.set(v.plan.rolloutId, v.signed);
      log.info(
        { rolloutId: v.plan.rolloutId, firstWave: v.plan.firstWave, waves: v.plan.waves.length },
        'rollout plan held',
      );
      await save();
      return v.signed;
    },
    get(rolloutId) {
      const held = plans.get(rolloutId);
      return held && valid(held).ok ? held : undefined;
    },
    all() {
      return [...plans.values()].filter((p) => valid(p).ok);
    },
  };
}
