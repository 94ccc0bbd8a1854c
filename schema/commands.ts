import { z } from 'zod';
import { ImageSource } from './artifact.ts';
import { Digest, MessageId, NodeId, RolloutId, Timestamp } from './ids.ts';
import { KeyId } from './identity.ts';
import { PublicKeyPem } from './keyring.ts';

/** Current version of the command shape. */
export const COMMAND_VERSION = 1;

const envelope = {
  v: z.literal(COMMAND_VERSION),
  /** Idempotency key: the same step of the same rollout always has the same id. */
  commandId: MessageId,
  /** Random, single use: an agent refuses a nonce it has seen (replay). */
  nonce: z.string().regex(/^[A-Za-z0-9_-]{16,128}$/, 'expected 16-128 url-safe random characters'),
  issuedAt: Timestamp,
  expiresAt: Timestamp,
  /** The only node that may act on this command. */
  nodeId: NodeId,
};

const common = { ...envelope, rolloutId: RolloutId };

/** Write the image to the passive slot, trial-boot it and commit or fall back. */
export const UpgradeCommand = z.object({
  ...common,
  type: z.literal('Upgrade'),
  image: ImageSource,
  /** Digest of the image manifest the node must verify against. */
  manifestDigest: Digest,
  /** Allow an image whose version is older than the node's. */
  allowDowngrade: z.boolean().default(false),
  /** Health checks the agent runs on the trial boot, by name (configured on the agent). */
  healthChecks: z.array(z.string()).default([]),
});

/** Switch back to the slot the node ran before this rollout, without downloading anything. */
export const RollbackCommand = z.object({
  ...common,
  type: z.literal('Rollback'),
  /** The version the node should come back on (what it ran before the rollout). */
  toVersion: z.string().min(1).optional(),
  /**
   * The operator's signed allowance to go below the node's minimum version (a rollout's saga
   * rollback sets it). Optional without a default, so Rollbacks signed before it existed still verify.
   */
  allowDowngrade: z.boolean().optional(),
});

/** Stop a pending upgrade of this rollout if it has not reached the reboot yet. */
export const CancelCommand = z.object({ ...common, type: z.literal('Cancel') });

/** A control-plane command about a rollout, to one node. */
export const Command = z.discriminatedUnion('type', [UpgradeCommand, RollbackCommand, CancelCommand]);
export type Command = z.output<typeof Command>;
export type CommandInput = z.input<typeof Command>;
export type CommandType = Command['type'];

/**
 * Trust one more control-plane key (a rotation): signed by a key the node already trusts, so
 * trust passes from key to key and never from whoever sent the message.
 */
export const TrustKeyCommand = z.object({
  ...envelope,
  type: z.literal('TrustKey'),
  /** Id of the announced key; must be the id of `publicKey`. */
  trustKeyId: KeyId,
  publicKey: PublicKeyPem,
});

/** Stop trusting a control-plane key: the node refuses everything signed by it from now on. */
export const RevokeKeyCommand = z.object({
  ...envelope,
  type: z.literal('RevokeKey'),
  revokeKeyId: KeyId,
});

/** A command about the control plane's own keys, to one node. */
export const KeyCommand = z.discriminatedUnion('type', [TrustKeyCommand, RevokeKeyCommand]);
export type KeyCommand = z.output<typeof KeyCommand>;
export type KeyCommandInput = z.input<typeof KeyCommand>;

/** Any signed command a node acts on: about a rollout or about the control plane's keys. */
export const AnyCommand = z.discriminatedUnion('type', [
  UpgradeCommand,
  RollbackCommand,
  CancelCommand,
  TrustKeyCommand,
  RevokeKeyCommand,
]);
export type AnyCommand = z.output<typeof AnyCommand>;
export type AnyCommandInput = z.input<typeof AnyCommand>;

/** True for the commands about control-plane keys. */
export function isKeyCommand(command: AnyCommand): command is KeyCommand {
  return command.type === 'TrustKey' || command.type === 'RevokeKey';
}

/** A command with its ed25519 signature over the canonical encoding of `command`. */
export const SignedCommand = z.object({
  command: AnyCommand,
  /** Which control-plane key signed it (first 16 hex of the sha256 of the raw public key). */
  keyId: z.string().regex(/^[0-9a-f]{16}$/, 'expected a 16-hex-digit key id'),
  /** base64 ed25519 signature. */
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'expected a base64 ed25519 signature (64 bytes)'),
});
export type SignedCommand = z.output<typeof SignedCommand>;
