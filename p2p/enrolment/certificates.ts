import { verifyEnrolment } from '../../signing/node-identity.ts';
import type { TrustedKeys } from '../../signing/index.ts';
import type { EnrolmentCertificate } from '../../schema/index.ts';

/** What became of a certificate a peer presented. */
export type CertificateVerdict =
  | { readonly ok: true; readonly certificate: EnrolmentCertificate }
  | { readonly ok: false; readonly reason: string };

/** Verified enrolment certificates by peer id. */
export interface CertificateBook {
  /**
   * Verifies a certificate presented for `peerId` (control-plane signature, and the peer id it
   * names must be `peerId`) and keeps it when good.
   */
  offer(input: unknown, peerId: string): CertificateVerdict;
  /** The verified certificate of a peer. */
  get(peerId: string): EnrolmentCertificate | undefined;
  /** The peer bound to a node by the newest verified certificate. */
  peerOf(nodeId: string): string | undefined;
}

/** A book checking certificates against the control plane's keys (read at each check: rotation adds keys). */
export function createCertificateBook(trustedKeys: TrustedKeys): CertificateBook {
  const byPeer = new Map<string, EnrolmentCertificate>();
  const byNode = new Map<string, EnrolmentCertificate>();
  return {
    offer(input, peerId) {
      const result = verifyEnrolment(input, trustedKeys);
      if (!result.ok) return { ok: false, reason: result.message };
      const cert = result.certificate;
      if (cert.peerId !== peerId) {
        return {
          ok: false,
          reason: `the enrolment certificate of ${cert.nodeId} names peer ${cert.peerId}, presented for peer ${peerId}`,
        };
      }
      byPeer.set(peerId, cert);
      const known = byNode.get(cert.nodeId);
      // A re-installed node is enrolled again with its new key: the newer certificate names its peer.
      if (!known || known.issuedAt <= cert.issuedAt) byNode.set(cert.nodeId, cert);
      return { ok: true, certificate: cert };
    },
    get: (peerId) => byPeer.get(peerId),
    peerOf: (nodeId) => byNode.get(nodeId)?.peerId,
  };
}
