import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import {
  ENROLMENTS_BUCKET,
  EVENTS_STREAM,
  eventSubject,
  type EnrolmentCertificate,
  type Labels,
} from '../schema/index.ts';
import { verifyEnrolment, type NodeIdentity, type TrustedKeys } from '../signing/index.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { describeError } from './errors.ts';
import { nodeEvent } from './events.ts';
import type { EventStamp, Journal } from './journal.ts';

/** Where the node keeps the control plane's certificate for its key. */
export function enrolmentPath(dataDir: string): string {
  return join(dataDir, 'enrolment.json');
}

/** Who the certificate must be for: this node id, this key, a trusted issuer. */
export interface EnrolmentSubject {
  readonly nodeId: string;
  readonly identity: NodeIdentity;
  /** Control-plane keys; empty means the issuer cannot be checked here (the control plane still does). */
  readonly trustedKeys: TrustedKeys;
}

/** Checks a certificate is for this node and key (and, with trusted keys, from the control plane). */
export function checkCertificate(
  raw: unknown,
  who: EnrolmentSubject,
): { ok: true; certificate: EnrolmentCertificate } | { ok: false; message: string } {
  const cert = raw as Partial<EnrolmentCertificate> | null;
  if (cert?.nodeId !== who.nodeId) {
    return { ok: false, message: `the certificate is for node ${cert?.nodeId}, this is ${who.nodeId}` };
  }
  if (cert.keyId !== who.identity.keyId) {
    return {
      ok: false,
      message: `the certificate names key ${cert.keyId}, this node's key (peer.key) is ${who.identity.keyId}; enrol this key again`,
    };
  }
  if (who.trustedKeys.size === 0) return { ok: true, certificate: cert as EnrolmentCertificate };
  const checked = verifyEnrolment(raw, who.trustedKeys);
  return checked.ok ? { ok: true, certificate: checked.certificate } : checked;
}

/** The node's stored certificate, when it has a valid one. */
export async function readEnrolment(
  dataDir: string,
  who: EnrolmentSubject,
  log: Logger,
): Promise<EnrolmentCertificate | undefined> {
  const file = enrolmentPath(dataDir);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      log.error({ err: describeError(err) }, `cannot read ${file}; asking to be enrolled`);
    }
    return undefined;
  }
  const checked = checkCertificate(raw, who);
  if (!checked.ok) {
    log.error({ file }, `enrolment certificate refused: ${checked.message}; asking to be enrolled`);
    return undefined;
  }
  return checked.certificate;
}

/**
 * Asks the control plane to enrol this node (a NodeEnrollmentRequested signed by the key it
 * presents) and waits, without a restart, until an operator accepts it: the certificate appears
 * in the enrolment bucket under the node id, is checked and stored at `<dataDir>/enrolment.json`.
 */
export async function requestEnrolment(init: {
  nc: NatsConnection;
  who: EnrolmentSubject;
  labels: Labels;
  agentVersion: string;
  dataDir: string;
  journal: Journal;
  stamp: EventStamp;
  log: Logger;
  signal: AbortSignal;
}): Promise<EnrolmentCertificate | undefined> {
  const { nc, who, log } = init;
  const request = init.stamp(
    nodeEvent(who.nodeId, 'NodeEnrollmentRequested', {
      publicKey: who.identity.publicKey,
      labels: init.labels,
      agentVersion: init.agentVersion,
    }),
    await init.journal.reserveEventSeq(),
  );
  // Opened, not created: the control plane makes the bucket, and a node's NATS access may only read it.
  const kv = await new Kvm(nc).open(ENROLMENTS_BUCKET);
  const watch = await kv.watch({ key: who.nodeId });
  const stop = () => void watch.stop();
  init.signal.addEventListener('abort', stop, { once: true });
  try {
    await jetstream(nc).publish(eventSubject(request), JSON.stringify(request), {
      msgID: request.id,
      expect: { streamName: EVENTS_STREAM },
    });
    log.warn(
      { keyId: who.identity.keyId, peerId: who.identity.peerId },
      `not enrolled: asked to be enrolled; an operator runs 'slotflow node accept ${who.nodeId}'`,
    );
    for await (const entry of watch) {
      if (entry.operation !== 'PUT') continue;
      let raw: unknown;
      try {
        raw = entry.json();
      } catch {
        log.warn('the enrolment bucket holds no JSON for this node; still waiting');
        continue;
      }
      const checked = checkCertificate(raw, who);
      if (!checked.ok) {
        log.warn(`certificate in the enrolment bucket refused: ${checked.message}; still waiting`);
        continue;
      }
      await writeFileAtomic(enrolmentPath(init.dataDir), JSON.stringify(checked.certificate, null, 2));
      log.info({ issuer: checked.certificate.issuer.keyId }, 'enrolled: certificate stored');
      return checked.certificate;
    }
    return undefined;
  } finally {
    init.signal.removeEventListener('abort', stop);
    stop();
  }
}
