import { createPublicKey, createPrivateKey, sign, verify, type KeyObject } from 'node:crypto';
import type { PrivateKey } from '@libp2p/interface';
import {
  EnrolmentCertificate,
  canonicalBytes,
  describeIssues,
  type NodeEvent,
  type NodeEventSignature,
} from '../schema/index.ts';
import { KeyError, keyIdOf, type SigningKey, type TrustedKeys } from './keys.ts';
import { ed25519PeerId } from './peer-id.ts';

/** A node's own ed25519 key: it signs the node's events and is its libp2p identity. */
export interface NodeIdentity {
  readonly keyId: string;
  /** Raw 32-byte public key, base64. */
  readonly publicKey: string;
  readonly peerId: string;
  readonly privateKey: KeyObject;
}

/** Parses a raw 32-byte ed25519 public key written in base64. */
export function nodePublicKey(rawBase64: string): KeyObject {
  const raw = Buffer.from(rawBase64, 'base64');
  if (raw.length !== 32) {
    throw new KeyError(`expected a raw 32-byte ed25519 public key in base64, got ${raw.length} bytes`);
  }
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
    format: 'jwk',
  });
}

/** The libp2p peer id of a raw ed25519 public key. */
export function peerIdOfPublicKey(rawBase64: string): string {
  const raw = Buffer.from(rawBase64, 'base64');
  const peerId = ed25519PeerId(raw);
  if (peerId === undefined) {
    throw new KeyError(
      `expected a raw 32-byte ed25519 public key in base64 for a peer id, got ${raw.length} bytes`,
    );
  }
  return peerId;
}

/** A node identity from the node's libp2p private key (Ed25519 only). */
export function nodeIdentityFromPeerKey(key: PrivateKey): NodeIdentity {
  if (key.type !== 'Ed25519') throw new KeyError(`expected an Ed25519 node key, got ${key.type}`);
  return nodeIdentityFromEd25519(Buffer.from(key.raw).subarray(0, 32), key.publicKey.raw);
}

/** A node identity from its ed25519 key: the 32-byte seed and the raw 32-byte public key. */
export function nodeIdentityFromEd25519(seedBytes: Uint8Array, publicKeyBytes: Uint8Array): NodeIdentity {
  const pub = Buffer.from(publicKeyBytes);
  const seed = Buffer.from(seedBytes);
  const privateKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: seed.toString('base64url'), x: pub.toString('base64url') },
    format: 'jwk',
  });
  const publicKey = pub.toString('base64');
  return {
    keyId: keyIdOf(createPublicKey(privateKey)),
    publicKey,
    peerId: peerIdOfPublicKey(publicKey),
    privateKey,
  };
}

function unsigned<T extends { sig?: unknown }>(event: T): Omit<T, 'sig'> {
  const { sig: _sig, ...rest } = event;
  return rest;
}

/** Signs a node event with the node's key (over its canonical encoding without `sig`). */
export function signNodeEvent<E extends NodeEvent>(event: E, identity: NodeIdentity): E {
  const value = sign(null, canonicalBytes(unsigned(event)), identity.privateKey).toString('base64');
  const sig: NodeEventSignature = { alg: 'ed25519', keyId: identity.keyId, value };
  return { ...event, sig };
}

/** Why a node event's signature is not good. */
export type NodeEventCheck =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly reason: 'unsigned' | 'wrong-key' | 'bad-signature';
      readonly message: string;
    };

/** Checks a node event's signature against the node's enrolled public key. */
export function verifyNodeEvent(
  event: NodeEvent,
  enrolled: { keyId: string; key: KeyObject },
): NodeEventCheck {
  if (!event.sig) {
    return {
      ok: false,
      reason: 'unsigned',
      message: `${event.type} ${event.id} from ${event.nodeId} is not signed`,
    };
  }
  if (event.sig.keyId !== enrolled.keyId) {
    return {
      ok: false,
      reason: 'wrong-key',
      message: `${event.type} ${event.id} is signed by key ${event.sig.keyId}, node ${event.nodeId} is enrolled with ${enrolled.keyId}`,
    };
  }
  const good = verify(
    null,
    canonicalBytes(unsigned(event)),
    enrolled.key,
    Buffer.from(event.sig.value, 'base64'),
  );
  return good
    ? { ok: true }
    : {
        ok: false,
        reason: 'bad-signature',
        message: `${event.type} ${event.id}: signature does not match the event (node ${event.nodeId})`,
      };
}

/** Issues the control plane's enrolment certificate binding `nodeId` to a node public key. */
export function issueEnrolment(
  input: { nodeId: string; publicKey: string },
  key: SigningKey,
  now = new Date(),
): EnrolmentCertificate {
  const body = {
    v: 1 as const,
    nodeId: input.nodeId,
    publicKey: input.publicKey,
    keyId: keyIdOf(nodePublicKey(input.publicKey)),
    peerId: peerIdOfPublicKey(input.publicKey),
    issuedAt: now.toISOString(),
  };
  const signature = sign(null, canonicalBytes(body), key.privateKey).toString('base64');
  return EnrolmentCertificate.parse({ ...body, issuer: { keyId: key.keyId, signature } });
}

/** Outcome of checking an enrolment certificate. */
export type EnrolmentCheck =
  | { readonly ok: true; readonly certificate: EnrolmentCertificate; readonly key: KeyObject }
  | { readonly ok: false; readonly message: string };

/** Checks a certificate's shape, issuer signature and that its key id and peer id follow from its key. */
export function verifyEnrolment(input: unknown, trusted: TrustedKeys): EnrolmentCheck {
  const parsed = EnrolmentCertificate.safeParse(input);
  if (!parsed.success) {
    return {
      ok: false,
      message: `malformed enrolment certificate: ${describeIssues(parsed.error.issues, input).join('; ')}`,
    };
  }
  const cert = parsed.data;
  const issuer = trusted.get(cert.issuer.keyId);
  if (!issuer)
    return {
      ok: false,
      message: `enrolment of ${cert.nodeId} is signed by unknown key ${cert.issuer.keyId}`,
    };
  const { issuer: _issuer, ...body } = cert;
  if (!verify(null, canonicalBytes(body), issuer, Buffer.from(cert.issuer.signature, 'base64'))) {
    return { ok: false, message: `enrolment of ${cert.nodeId}: issuer signature does not match` };
  }
  let key: KeyObject;
  try {
    key = nodePublicKey(cert.publicKey);
  } catch (err) {
    return { ok: false, message: `enrolment of ${cert.nodeId}: ${(err as Error).message}` };
  }
  if (keyIdOf(key) !== cert.keyId || peerIdOfPublicKey(cert.publicKey) !== cert.peerId) {
    return {
      ok: false,
      message: `enrolment of ${cert.nodeId}: key id or peer id does not follow from its public key`,
    };
  }
  return { ok: true, certificate: cert, key };
}
