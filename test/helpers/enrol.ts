// Enrolment for tests: agents are pre-authorised as an operator would (`slotflow node
// preauthorize`), so they start with a certificate and their signed events are accepted.
import type { NatsConnection } from '@nats-io/nats-core';
import type { EventLog } from '../../eventlog/index.ts';
import type { EnrolmentCertificate } from '../../schema/index.ts';
import { localAuthority, preauthorizeNode } from '../../trust/index.ts';

/** Pre-authorises `nodeId` with the control plane under `home`: its key and enrolment.json in `dataDir`. */
export async function preauthorize(
  nc: NatsConnection,
  log: EventLog,
  home: string,
  nodeId: string,
  dataDir: string,
): Promise<EnrolmentCertificate> {
  const authority = await localAuthority(nc, log, home, 'test');
  return (await preauthorizeNode(authority, { nodeId, dataDir })).certificate;
}
