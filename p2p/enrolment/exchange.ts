import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import type { Logger } from 'pino';
import {
  EnrolmentRequest,
  EnrolmentResponse,
  describeIssues,
  type EnrolmentCertificate,
} from '../../schema/index.ts';
import type { TrustedKeys } from '../../signing/index.ts';
import { describeError } from '../errors.ts';
import type { PeerBindings, Vouch } from '../gossip/bindings.ts';
import type { P2pNode } from '../node.ts';
import { ENROLMENT_PROTOCOL } from '../topics.ts';
import { createCertificateBook, type CertificateBook } from './certificates.ts';

/** Largest frame of the enrolment protocol (a certificate is well under 1 KiB). */
const MAX_FRAME = 8 * 1024;

/** Counters of the certificate exchange, for metrics and tests. */
export interface EnrolmentStats {
  /** Certificates verified (each peer counted once). */
  verified: number;
  /** Peers that presented no certificate, or one that does not verify or names another peer. */
  refused: number;
  /** Why the last peer was refused. */
  lastRefusal?: string;
}

/** The `/slotflow/enrolment/1` protocol: presents this node's certificate, learns peers'. */
export interface EnrolmentExchange extends PeerBindings {
  readonly book: CertificateBook;
  readonly stats: EnrolmentStats;
  /** This node's own certificate, if it is enrolled. */
  own(): EnrolmentCertificate | undefined;
  /** Presents a new certificate from now on (the node was enrolled while running). */
  useCertificate(cert: EnrolmentCertificate): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface EnrolmentExchangeInit {
  readonly node: P2pNode;
  readonly trustedKeys: TrustedKeys;
  /** This node's certificate (verified by the caller); none: the node is not enrolled. */
  readonly own?: EnrolmentCertificate | undefined;
  /** How long one certificate request may take (default 10 s: a loaded machine answers late). */
  readonly timeoutMs?: number;
  /** A peer refused is asked again no sooner than this (default 5 s; 1 s when nobody answered). */
  readonly retryMs?: number;
  readonly log: Logger;
}

async function readJson(stream: Stream, signal: AbortSignal): Promise<unknown> {
  const lp = lpStream(stream, { maxDataLength: MAX_FRAME });
  const bytes = (await lp.read({ signal })).subarray();
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
}

async function writeJson(stream: Stream, value: unknown, signal: AbortSignal): Promise<void> {
  const lp = lpStream(stream, { maxDataLength: MAX_FRAME });
  await lp.write(new TextEncoder().encode(JSON.stringify(value)), { signal });
}

/**
 * Binds peers to enrolled nodes by the control plane's signature, never by first use. Each node
 * asks every peer it connects to for its certificate; a gossip author further away is looked up
 * through the peer that forwarded its message (certificates verify on their own, so any peer may
 * pass one on). A peer that cannot be vouched for is asked again only after `retryMs`, so a peer
 * flooding the topics cannot make this node flood the mesh with requests.
 */
export function createEnrolmentExchange(init: EnrolmentExchangeInit): EnrolmentExchange {
  const { node, log } = init;
  const libp2p = node.libp2p;
  const timeoutMs = init.timeoutMs ?? 10_000;
  const retryMs = init.retryMs ?? 5_000;
  const book = createCertificateBook(init.trustedKeys);
  const stats: EnrolmentStats = { verified: 0, refused: 0 };
  const pending = new Map<string, Promise<Vouch>>();
  const failed = new Map<string, { at: number; vouch: Vouch }>();
  let own = init.own;

  /** The node a peer speaks for: its certificate must be the newest one seen for that node. */
  function bound(peerId: string): string | undefined {
    const cert = book.get(peerId);
    return cert && book.peerOf(cert.nodeId) === peerId ? cert.nodeId : undefined;
  }

  async function ask(from: PeerId, peerId: string): Promise<unknown> {
    const signal = AbortSignal.timeout(timeoutMs);
    const stream = await libp2p.dialProtocol(from, ENROLMENT_PROTOCOL, {
      signal,
      runOnLimitedConnection: true,
    });
    try {
      await writeJson(stream, { v: 1, peerId } satisfies EnrolmentRequest, signal);
      const raw = await readJson(stream, signal);
      await stream.close({ signal }).catch(() => undefined);
      const parsed = EnrolmentResponse.safeParse(raw);
      if (!parsed.success) {
        throw new Error(
          `malformed enrolment response: ${describeIssues(parsed.error.issues, raw).join('; ')}`,
        );
      }
      return parsed.data.certificate;
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(describeError(err)));
      throw err;
    }
  }

  async function lookUp(peerId: string, via: string | undefined): Promise<Vouch> {
    const sources = [peerId, ...(via && via !== peerId ? [via] : [])].filter(
      (p) => libp2p.getConnections(peerIdFromString(p)).length > 0,
    );
    const refusals: string[] = [];
    const silences: string[] = [];
    for (const source of sources) {
      let presented: unknown;
      try {
        presented = await ask(peerIdFromString(source), peerId);
      } catch (err) {
        silences.push(`${source} did not answer: ${describeError(err)}`);
        continue;
      }
      if (presented === undefined) {
        if (source === peerId) refusals.push('it presented no certificate');
        else silences.push(`${source} knows no certificate of it`);
        continue;
      }
      const verdict = book.offer(presented, peerId);
      if (!verdict.ok) {
        refusals.push(verdict.reason);
        continue;
      }
      const nodeId = bound(peerId);
      if (nodeId !== undefined) {
        failed.delete(peerId);
        stats.verified++;
        log.debug({ peer: peerId, nodeId, source }, 'peer vouched for by its enrolment certificate');
        return { type: 'enrolled', nodeId };
      }
      const newer = book.peerOf(verdict.certificate.nodeId);
      refusals.push(`a newer certificate binds ${verdict.certificate.nodeId} to peer ${newer}`);
    }
    if (sources.length === 0) silences.push('no connection to it or to the peer that forwarded its message');
    const reasons = [...refusals, ...silences].join('; ');
    const vouch: Vouch =
      refusals.length > 0
        ? { type: 'refused', reason: `peer ${peerId} is not an enrolled node: ${reasons}` }
        : { type: 'unknown', reason: `cannot tell which node peer ${peerId} is: ${reasons}` };
    const now = Date.now();
    // Peers that come and go under new ids must not grow the table for ever.
    if (failed.size >= 1_024) {
      for (const [p, f] of failed) if (now - f.at >= retryMs) failed.delete(p);
    }
    failed.set(peerId, { at: now, vouch });
    if (vouch.type === 'refused') {
      stats.refused++;
      stats.lastRefusal = vouch.reason;
      log.warn({ peer: peerId, reasons }, 'peer is not an enrolled node; what it gossips is dropped');
    } else {
      log.debug({ peer: peerId, reasons }, 'cannot look up the enrolment of a peer yet');
    }
    return vouch;
  }

  async function vouch(peerId: string, via?: string): Promise<Vouch> {
    const nodeId = bound(peerId);
    if (nodeId !== undefined) return { type: 'enrolled', nodeId };
    const inFlight = pending.get(peerId);
    if (inFlight) return inFlight;
    const last = failed.get(peerId);
    if (last && Date.now() - last.at < (last.vouch.type === 'refused' ? retryMs : Math.min(retryMs, 1_000))) {
      return last.vouch;
    }
    const lookup = lookUp(peerId, via).finally(() => pending.delete(peerId));
    pending.set(peerId, lookup);
    return lookup;
  }

  async function handle(stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const raw = await readJson(stream, signal);
      const request = EnrolmentRequest.parse(raw);
      const certificate = request.peerId === node.peerId ? own : book.get(request.peerId);
      await writeJson(
        stream,
        { v: 1, ...(certificate ? { certificate } : {}) } satisfies EnrolmentResponse,
        signal,
      );
      await stream.close({ signal });
    } catch (err) {
      log.debug(
        { peer: connection.remotePeer.toString(), err: describeError(err) },
        'enrolment request failed',
      );
      stream.abort(err instanceof Error ? err : new Error(describeError(err)));
    }
  }

  // Learn a peer's certificate as soon as it connects, before its first message needs it.
  const onConnect = (evt: CustomEvent<PeerId>): void => {
    void vouch(evt.detail.toString()).catch(() => undefined);
  };

  return {
    book,
    stats,
    vouch,
    peerOf: (nodeId) => book.peerOf(nodeId),
    own: () => own,
    useCertificate(cert) {
      own = cert;
    },
    async start() {
      await libp2p.handle(ENROLMENT_PROTOCOL, handle, { runOnLimitedConnection: true, force: true });
      libp2p.addEventListener('peer:connect', onConnect);
    },
    async stop() {
      libp2p.removeEventListener('peer:connect', onConnect);
      await libp2p.unhandle(ENROLMENT_PROTOCOL);
    },
  };
}
