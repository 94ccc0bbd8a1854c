import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EnrolmentCertificate } from '../../schema/index.ts';
import { verifyEnrolment } from '../../signing/node-identity.ts';
import type { TrustedKeys } from '../../signing/index.ts';
import { EnrolmentError } from '../errors.ts';

/** File name of a node's enrolment certificate in its data dir. */
export const ENROLMENT_FILE = 'enrolment.json';

/**
 * Loads this node's enrolment certificate from `<dataDir>/enrolment.json`; undefined when the
 * node is not enrolled yet (no file). A certificate that does not verify against the control
 * plane's keys, or names another node or another peer than this node's key, is refused: peers
 * would drop everything the node says under it.
 */
export async function loadOwnEnrolment(input: {
  dataDir: string;
  nodeId: string;
  peerId: string;
  trustedKeys: TrustedKeys;
}): Promise<EnrolmentCertificate | undefined> {
  const file = join(input.dataDir, ENROLMENT_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new EnrolmentError(`cannot read the enrolment certificate ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const again = `ask the operator for a new one ('slotflow node preauthorize') and put it at ${file}`;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new EnrolmentError(`${file}: expected an enrolment certificate in JSON; ${again}`, { cause: err });
  }
  const result = verifyEnrolment(raw, input.trustedKeys);
  if (!result.ok) throw new EnrolmentError(`${file}: ${result.message}; ${again}`);
  const cert = result.certificate;
  if (cert.nodeId !== input.nodeId) {
    throw new EnrolmentError(
      `${file} enrols node ${cert.nodeId}, this agent runs as ${input.nodeId}; start it with --node-id ${cert.nodeId} or ${again}`,
    );
  }
  if (cert.peerId !== input.peerId) {
    throw new EnrolmentError(
      `${file} enrols peer ${cert.peerId}, this node's key (${join(input.dataDir, 'peer.key')}) is peer ${input.peerId}; ${again}`,
    );
  }
  return cert;
}
