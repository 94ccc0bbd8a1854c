import { sign, verify } from 'node:crypto';
import {
  RolloutPlan,
  SignedPlan,
  canonicalBytes,
  describeIssues,
  parseWith,
  type RolloutPlanInput,
} from '../schema/index.ts';
import type { SigningKey, TrustedKeys } from './keys.ts';

/** Validates a rollout plan and signs its canonical encoding with the control plane's key. */
export function signPlan(input: RolloutPlanInput, key: SigningKey): SignedPlan {
  const plan = parseWith(RolloutPlan, input, 'rollout plan');
  const signature = sign(null, canonicalBytes(plan), key.privateKey).toString('base64');
  return { plan, keyId: key.keyId, signature };
}

/** Outcome of checking a signed plan. */
export type PlanVerification =
  | { readonly ok: true; readonly plan: RolloutPlan; readonly signed: SignedPlan }
  | {
      readonly ok: false;
      readonly reason: 'malformed' | 'unknown-key' | 'bad-signature' | 'expired' | 'not-yet-valid';
      readonly message: string;
    };

/** What a plan is checked against. */
export interface PlanVerifyContext {
  readonly trustedKeys: TrustedKeys;
  readonly now?: Date;
  /** Tolerated clock difference between control plane and node. */
  readonly clockSkewMs?: number;
}

/**
 * Checks a signed plan: shape, key, signature, then freshness. Plans carry no nonce: the same
 * plan is re-gossiped many times on purpose, and acting on it twice is harmless.
 */
export function verifyPlan(input: unknown, ctx: PlanVerifyContext): PlanVerification {
  const parsed = SignedPlan.safeParse(input);
  if (!parsed.success) {
    return {
      ok: false,
      reason: 'malformed',
      message: `malformed rollout plan: ${describeIssues(parsed.error.issues, input).join('; ')}`,
    };
  }
  const { plan, keyId, signature } = parsed.data;
  const key = ctx.trustedKeys.get(keyId);
  if (!key)
    return { ok: false, reason: 'unknown-key', message: `rollout plan signed by unknown key ${keyId}` };
  if (!verify(null, canonicalBytes(plan), key, Buffer.from(signature, 'base64'))) {
    return {
      ok: false,
      reason: 'bad-signature',
      message: `signature does not match rollout plan ${plan.rolloutId} (key ${keyId})`,
    };
  }
  const now = (ctx.now ?? new Date()).getTime();
  const skew = ctx.clockSkewMs ?? 60_000;
  if (now > Date.parse(plan.expiresAt) + skew) {
    return {
      ok: false,
      reason: 'expired',
      message: `rollout plan ${plan.rolloutId} expired at ${plan.expiresAt}`,
    };
  }
  if (Date.parse(plan.issuedAt) > now + skew) {
    return {
      ok: false,
      reason: 'not-yet-valid',
      message: `rollout plan ${plan.rolloutId} issued in the future (${plan.issuedAt})`,
    };
  }
  return { ok: true, plan, signed: parsed.data };
}
