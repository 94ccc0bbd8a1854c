// Real libp2p peers on loopback for p2p tests: temp data dirs, 127.0.0.0/8 only, no mDNS, one
// mesh pre-shared key, and each peer enrolled by the test's control-plane key unless asked not to.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { createLogger } from '../../runtime/log.ts';
import {
  initKeys,
  loadSigningKey,
  newNonce,
  signCommand,
  trustKeys,
  type SigningKey,
} from '../../signing/index.ts';
import { generateKey } from '@libp2p/pnet';
import {
  createSlotflowPeer,
  ENROLMENT_FILE,
  loadOrCreatePeerKey,
  type SlotflowPeer,
  type SlotflowPeerInit,
} from '../../p2p/index.ts';
import type {
  EnrolmentCertificate,
  RolloutPlanInput,
  SignedCommand,
  SignedPlan,
} from '../../schema/index.ts';
import { issueEnrolment, nodeIdentityFromPeerKey } from '../../signing/node-identity.ts';
import { signPlan } from '../../signing/plan.ts';

export const LOOPBACK = ['127.0.0.0/8'];

let quiet: Logger | undefined;
/** A logger that stays silent unless SLOTFLOW_LOG_LEVEL asks for more. */
export function testLog(): Logger {
  if (!quiet) {
    quiet = createLogger('test:p2p');
    if (!process.env['SLOTFLOW_LOG_LEVEL']) quiet.level = 'error';
  }
  return quiet;
}

const dirs: string[] = [];
/** A temp dir removed by cleanupDirs(). */
export async function tempDir(prefix = 'slotflow-p2p-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
export async function cleanupDirs(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** A control-plane key pair in a temp SLOTFLOW_HOME. */
export async function controlPlaneKey(): Promise<SigningKey> {
  const home = await tempDir('slotflow-keys-');
  await initKeys(home);
  return loadSigningKey(home);
}

let meshKey: Uint8Array | undefined;
/** The mesh pre-shared key every test peer of this process uses. */
export function testMeshKey(): Uint8Array {
  if (!meshKey) {
    meshKey = new Uint8Array(95);
    generateKey(meshKey);
  }
  return meshKey;
}

/** The control plane's enrolment certificate for the node whose identity is `<dataDir>/peer.key`. */
export async function enrolmentFor(
  dataDir: string,
  nodeId: string,
  key: SigningKey,
): Promise<EnrolmentCertificate> {
  const { key: peerKey } = await loadOrCreatePeerKey(join(dataDir, 'peer.key'));
  return issueEnrolment({ nodeId, publicKey: nodeIdentityFromPeerKey(peerKey).publicKey }, key);
}

/** Enrols a node as `slotflow node preauthorize` would: its certificate in `<dataDir>/enrolment.json`. */
export async function writeEnrolment(
  dataDir: string,
  nodeId: string,
  key: SigningKey,
): Promise<EnrolmentCertificate> {
  const cert = await enrolmentFor(dataDir, nodeId, key);
  await writeFile(join(dataDir, ENROLMENT_FILE), JSON.stringify(cert, null, 2));
  return cert;
}

export type PeerOptions = Partial<Omit<SlotflowPeerInit, 'trustedKeys'>> & {
  /** Start without an enrolment certificate (peers drop what it gossips). */
  readonly unenrolled?: boolean;
};

/** Starts one peer on loopback, in the test mesh and enrolled by `key` (unless `unenrolled`). */
export async function startPeer(
  nodeId: string,
  key: SigningKey,
  options: PeerOptions = {},
): Promise<SlotflowPeer> {
  const { unenrolled, ...init } = options;
  const dataDir = init.dataDir ?? (await tempDir());
  const peer = await createSlotflowPeer({
    nodeId,
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    allowedNetworks: LOOPBACK,
    trustedKeys: trustKeys(key.publicKey),
    redialIntervalMs: 500,
    log: testLog(),
    meshKey: testMeshKey(),
    ...(unenrolled || init.enrolment ? {} : { enrolment: await enrolmentFor(dataDir, nodeId, key) }),
    ...init,
  });
  await peer.start();
  return peer;
}

/**
 * Starts n peers forming a connected mesh: peer i bootstraps to up to `fanout` earlier peers
 * (a random graph, not a star), so gossip has to hop. With `hub`, every peer also bootstraps to
 * the first one, which then has many peers on one address (as a site's gateway agent would).
 */
export async function startMesh(
  n: number,
  key: SigningKey,
  options: (i: number) => PeerOptions = () => ({}),
  fanout = 3,
  hub = false,
): Promise<SlotflowPeer[]> {
  const peers: SlotflowPeer[] = [];
  for (let i = 0; i < n; i++) {
    const earlier = peers.map((p) => p.multiaddrs()[0]!);
    const picks: string[] = hub && earlier.length > 0 ? [earlier[0]!] : [];
    while (picks.length < Math.min(fanout + (hub ? 1 : 0), earlier.length)) {
      const a = earlier[Math.floor(Math.random() * earlier.length)]!;
      if (!picks.includes(a)) picks.push(a);
    }
    peers.push(await startPeer(`node-${i + 1}`, key, { bootstrap: picks, ...options(i) }));
  }
  await waitForMesh(peers);
  return peers;
}

/** Waits until every peer sees at least one other subscriber on every topic it uses. */
export async function waitForMesh(peers: readonly SlotflowPeer[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = peers.every((p) =>
      p.node.pubsub.getTopics().every((t) => p.node.pubsub.getSubscribers(t).length > 0),
    );
    if (ready) {
      // One heartbeat so meshes are grafted, not just subscriptions known.
      await sleep(800);
      return;
    }
    if (Date.now() > deadline) throw new Error('peers did not form a gossip mesh within the time limit');
    await sleep(50);
  }
}

export async function stopAll(peers: readonly SlotflowPeer[]): Promise<void> {
  await Promise.all(peers.map((p) => p.stop().catch(() => undefined)));
}

/** Polls until `check` is true or the time is up. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** A signed Upgrade command for a node. */
export function upgradeCommand(key: SigningKey, nodeId: string, rolloutId = 'r-p2p'): SignedCommand {
  const issuedAt = new Date();
  return signCommand(
    {
      v: 1,
      type: 'Upgrade',
      commandId: `${rolloutId}:${nodeId}:upgrade`,
      nonce: newNonce(),
      issuedAt: issuedAt.toISOString(),
      expiresAt: new Date(issuedAt.getTime() + 3_600_000).toISOString(),
      nodeId,
      rolloutId,
      image: {
        type: 'oci',
        reference: 'example.invalid/os:2',
        digest: `sha256:${'a'.repeat(64)}`,
        version: '2.0.0',
      },
      manifestDigest: `sha256:${'b'.repeat(64)}`,
    },
    key,
  );
}

/**
 * A rollout plan signed by `key` that starts now and is valid for an hour: two at a time, no
 * failure tolerated, a 10 s lease in a 30 s start window; `extra` overrides any field.
 */
export function testPlan(
  key: SigningKey,
  rolloutId: string,
  waves: string[][],
  extra: Partial<RolloutPlanInput> = {},
): SignedPlan {
  const now = Date.now();
  return signPlan(
    {
      v: 1,
      rolloutId,
      manifestDigest: `sha256:${'e'.repeat(64)}`,
      waves,
      maxUnavailable: 2,
      failureThreshold: { type: 'count', count: 0 },
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3_600_000).toISOString(),
      startsAt: new Date(now).toISOString(),
      leaseTtlMs: 10_000,
      startWindowMs: 30_000,
      clockSkewMs: 200,
      ...extra,
    },
    key,
  );
}
