import { createPublicKey } from 'node:crypto';
import type { KeyCommand, RejectReason } from '../schema/index.ts';
import { keyIdOf } from '../signing/index.ts';

/** What the agent knows of control-plane keys when a key command arrives. */
export interface KeyView {
  /** Key ids the node trusts now (bootstrap and announced, minus revoked). */
  readonly trusted: ReadonlySet<string>;
  readonly revoked: ReadonlySet<string>;
}

/** What to do with a verified TrustKey or RevokeKey command. */
export type KeyDecision =
  | { readonly kind: 'trust'; readonly command: KeyCommand & { type: 'TrustKey' }; readonly signedBy: string }
  | {
      readonly kind: 'revoke';
      readonly command: KeyCommand & { type: 'RevokeKey' };
      readonly signedBy: string;
    }
  | { readonly kind: 'reject'; readonly reason: RejectReason; readonly message: string };

function announcedId(pem: string): string | undefined {
  try {
    return keyIdOf(createPublicKey(pem));
  } catch {
    return undefined;
  }
}

/**
 * Decides a key command whose signature, freshness and nonce already checked out. Trust only
 * grows by announcement from a trusted key; a revoked key is never trusted again; a node never
 * revokes the key that signed the revocation, nor its last trusted key (it would be cut off).
 */
export function decideKeyCommand(command: KeyCommand, signedBy: string, keys: KeyView): KeyDecision {
  if (command.type === 'TrustKey') {
    const id = announcedId(command.publicKey);
    if (id !== command.trustKeyId) {
      return {
        kind: 'reject',
        reason: 'malformed',
        message: `TrustKey announces key ${command.trustKeyId} but its public key ${id ? `has id ${id}` : 'is not an ed25519 key'}`,
      };
    }
    if (keys.revoked.has(id)) {
      return {
        kind: 'reject',
        reason: 'revoked-key',
        message: `key ${id} was revoked on this node; a revoked key is never trusted again (rotate to a new key)`,
      };
    }
    return { kind: 'trust', command, signedBy };
  }
  const target = command.revokeKeyId;
  if (target === signedBy) {
    return {
      kind: 'reject',
      reason: 'unsupported',
      message: `RevokeKey for ${target} is signed by that same key; sign it with another trusted key`,
    };
  }
  const remaining = [...keys.trusted].filter((k) => k !== target);
  if (remaining.length === 0) {
    return {
      kind: 'reject',
      reason: 'unsupported',
      message: `key ${target} is the only key this node trusts; announce its successor (TrustKey) first`,
    };
  }
  return { kind: 'revoke', command, signedBy };
}
