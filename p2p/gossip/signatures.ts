import { verify } from 'node:crypto';
import { canonicalBytes, type SignedCommand, type SignedPlan } from '../../schema/index.ts';
import { verifyPlan } from '../../signing/plan.ts';
import type { TrustedKeys } from '../../signing/index.ts';
import type { Verdict } from './topic.ts';

/** What relayed commands and plans are checked against. */
export interface RelayCheckContext {
  readonly trustedKeys: TrustedKeys;
  readonly now: () => number;
  /** Tolerated clock difference to the control plane (default 60 s, as for NATS commands). */
  readonly clockSkewMs: number;
}

/**
 * The checks a relaying peer can make on someone else's command: a trusted key signed exactly
 * these bytes and the command is still fresh. Target and nonce are the addressee's business
 * (signing/verifyCommand): relays must pass commands for other nodes on, and must not burn nonces.
 */
export function checkRelayedCommand(signed: SignedCommand, ctx: RelayCheckContext): Verdict<SignedCommand> {
  const key = ctx.trustedKeys.get(signed.keyId);
  if (!key) return { type: 'reject', reason: `command signed by unknown key ${signed.keyId}` };
  const ok = verify(null, canonicalBytes(signed.command), key, Buffer.from(signed.signature, 'base64'));
  if (!ok) {
    return {
      type: 'reject',
      reason: `signature does not match command ${signed.command.commandId} (key ${signed.keyId})`,
    };
  }
  const now = ctx.now();
  if (now > Date.parse(signed.command.expiresAt) + ctx.clockSkewMs) {
    return {
      type: 'ignore',
      reason: `command ${signed.command.commandId} expired at ${signed.command.expiresAt}`,
    };
  }
  if (Date.parse(signed.command.issuedAt) > now + ctx.clockSkewMs) {
    return { type: 'ignore', reason: `command ${signed.command.commandId} issued in the future` };
  }
  return { type: 'accept', value: signed };
}

/** Signature and freshness of a relayed plan (signing/verifyPlan); stale plans are ignored, forged ones rejected. */
export function checkRelayedPlan(signed: unknown, ctx: RelayCheckContext): Verdict<SignedPlan> {
  const result = verifyPlan(signed, {
    trustedKeys: ctx.trustedKeys,
    now: new Date(ctx.now()),
    clockSkewMs: ctx.clockSkewMs,
  });
  if (result.ok) return { type: 'accept', value: result.signed };
  return result.reason === 'expired' || result.reason === 'not-yet-valid'
    ? { type: 'ignore', reason: result.message }
    : { type: 'reject', reason: result.message };
}
