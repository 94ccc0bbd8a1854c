import { verify } from 'node:crypto';
import {
  SignedCommand,
  canonicalBytes,
  describeIssues,
  type Command,
  type RejectReason,
} from '../schema/index.ts';
import type { TrustedKeys } from './keys.ts';
import type { NonceStore } from './nonce-store.ts';

/** Outcome of checking a signed command: the command, or why it must be refused. */
export type Verification =
  | { readonly ok: true; readonly command: Command }
  | {
      readonly ok: false;
      readonly reason: RejectReason;
      readonly message: string;
      /** What could be read of the command, for the rejection event. */
      readonly command?: Partial<Command>;
    };

/** What the verifier checks against. */
export interface VerifyContext {
  readonly trustedKeys: TrustedKeys;
  /** The node doing the check; a command for another node is refused. */
  readonly nodeId: string;
  readonly nonces: NonceStore;
  readonly now?: Date;
  /** Tolerated clock difference between control plane and node. */
  readonly clockSkewMs?: number;
}

function peek(input: unknown): Partial<Command> | undefined {
  if (input && typeof input === 'object' && 'command' in input) {
    const c = (input as { command: unknown }).command;
    if (c && typeof c === 'object') return c as Partial<Command>;
  }
  return undefined;
}

/**
 * Checks, in order: shape, key, signature, target node, freshness, then the nonce (recorded only
 * when everything else passed, so a forged command cannot burn a real command's nonce).
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
  if (!(await ctx.nonces.claim(command.nonce, expiresAt + skew))) {
    return { ok: false, reason: 'replayed', message: `nonce ${command.nonce} was already used`, command };
  }
  return { ok: true, command };
}
