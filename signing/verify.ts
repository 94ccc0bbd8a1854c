import { verify } from 'node:crypto';
import {
  SignedCommand,
  canonicalBytes,
  describeIssues,
  type AnyCommand,
  type RejectReason,
} from '../schema/index.ts';
import type { TrustedKeys } from './keys.ts';
import type { NonceStore } from './nonce-store.ts';

/** Outcome of checking a signed command: the command, or why it must be refused. */
export type Verification =
  | { readonly ok: true; readonly command: AnyCommand; readonly keyId: string }
  | {
      readonly ok: false;
      readonly reason: RejectReason;
      readonly message: string;
      /** What could be read of the command, for the rejection event. */
      readonly command?: Partial<AnyCommand>;
    };

/** The longest a command may stay valid unless the node is configured otherwise (24 h). */
export const DEFAULT_MAX_COMMAND_LIFETIME_MS = 24 * 60 * 60 * 1000;

/** What the verifier checks against. */
export interface VerifyContext {
  readonly trustedKeys: TrustedKeys;
  /** Keys the node was told to refuse (a revocation wins over trust). */
  readonly revokedKeys?: ReadonlySet<string>;
  /** A command whose expiresAt lies further out than now + this is refused (default 24 h). */
  readonly maxLifetimeMs?: number;
  /** The node doing the check; a command for another node is refused. */
  readonly nodeId: string;
  readonly nonces: NonceStore;
  readonly now?: Date;
  /** Tolerated clock difference between control plane and node. */
  readonly clockSkewMs?: number;
}

function peek(input: unknown): Partial<AnyCommand> | undefined {
  if (input && typeof input === 'object' && 'command' in input) {
    const c = (input as { command: unknown }).command;
    if (c && typeof c === 'object') return c as Partial<AnyCommand>;
  }
  return undefined;
}

/**
 * Checks, in order: shape, key (revoked, then unknown), signature, target node, freshness (expired,
 * issued in the future, valid for too long), then the nonce (recorded only when everything else
 * passed, so a forged command cannot burn a real command's nonce).
 */
export async function verifyCommand(input: unknown, ctx: VerifyContext): Promise<Verification> {
  const parsed = SignedCommand.safeParse(input);
  if (!parsed.success) {
    return {
      ok: false,
      reason: 'malformed',
      message: `malformed command: ${describeIssues(parsed.error.issues, input).join('; ')}`,
      command: peek(input),
    };
  }
  const { command, keyId, signature } = parsed.data;
  if (ctx.revokedKeys?.has(keyId)) {
    return {
      ok: false,
      reason: 'revoked-key',
      message: `command signed by revoked key ${keyId}; the control plane must sign with a current key`,
      command,
    };
  }
  const key = ctx.trustedKeys.get(keyId);
  if (!key) {
    return { ok: false, reason: 'unknown-key', message: `command signed by unknown key ${keyId}`, command };
  }
  const good = verify(null, canonicalBytes(command), key, Buffer.from(signature, 'base64'));
  if (!good) {
    return {
      ok: false,
      reason: 'bad-signature',
      message: `signature does not match the command (key ${keyId})`,
      command,
    };
  }
  if (command.nodeId !== ctx.nodeId) {
    return {
      ok: false,
      reason: 'wrong-node',
      message: `command is for node ${command.nodeId}, this is ${ctx.nodeId}`,
      command,
    };
  }
  const now = (ctx.now ?? new Date()).getTime();
  const skew = ctx.clockSkewMs ?? 60_000;
  const expiresAt = Date.parse(command.expiresAt);
  if (now > expiresAt + skew) {
    return { ok: false, reason: 'expired', message: `command expired at ${command.expiresAt}`, command };
  }
  if (Date.parse(command.issuedAt) > now + skew) {
    return {
      ok: false,
      reason: 'not-yet-valid',
      message: `command issued in the future (${command.issuedAt})`,
      command,
    };
  }
  const maxLifetimeMs = ctx.maxLifetimeMs ?? DEFAULT_MAX_COMMAND_LIFETIME_MS;
  if (expiresAt > now + maxLifetimeMs + skew) {
    return {
      ok: false,
      reason: 'expiry-too-far',
      message: `command valid until ${command.expiresAt}, further out than this node accepts (${Math.round(maxLifetimeMs / 1000)} s from now); the control plane must sign commands with a shorter lifetime`,
      command,
    };
  }
  if (!(await ctx.nonces.claim(command.nonce, expiresAt + skew))) {
    return { ok: false, reason: 'replayed', message: `nonce ${command.nonce} was already used`, command };
  }
  return { ok: true, command, keyId };
}
