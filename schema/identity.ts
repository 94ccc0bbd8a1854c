import { z } from 'zod';
import { NodeId, Timestamp } from './ids.ts';

/** Standard base64 (with padding), as signatures and raw keys are written. */
export const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected standard base64');

/** Key id: the first 16 hex digits of the sha256 of a raw 32-byte ed25519 public key. */
export const KeyId = z.string().regex(/^[0-9a-f]{16}$/, 'expected a key id (16 lowercase hex digits)');
export type KeyId = z.infer<typeof KeyId>;

/**
 * A node's signature over its event: ed25519 over the canonical encoding of the event without
 * `sig`, by the key the node was enrolled with. Relayed events keep it, so no relay can alter them.
 */
export const NodeEventSignature = z.object({
  alg: z.literal('ed25519'),
  /** Key id of the node key that signed. */
  keyId: KeyId,
  /** The signature, base64. */
  value: Base64,
});
export type NodeEventSignature = z.infer<typeof NodeEventSignature>;

/** The control plane's signature over a record it vouches for. */
export const IssuerSignature = z.object({
  /** Control-plane key id. */
  keyId: KeyId,
  /** ed25519 over the canonical encoding of the record without `issuer`, base64. */
  signature: Base64,
});

/**
 * The control plane's word that a node id belongs to one key: the node's ed25519 public key (its
 * libp2p identity too, so the peer id follows from it). Agents present it to peers; the event
 * bridge and projector accept a node's events only under the key it names.
 */
export const EnrolmentCertificate = z.object({
  v: z.literal(1),
  nodeId: NodeId,
  /** The node's raw 32-byte ed25519 public key, base64. */
  publicKey: Base64,
  /** Key id of `publicKey`. */
  keyId: KeyId,
  /** The libp2p peer id derived from `publicKey`. */
  peerId: z.string().min(1).max(128),
  issuedAt: Timestamp,
  issuer: IssuerSignature,
});
export type EnrolmentCertificate = z.infer<typeof EnrolmentCertificate>;
