// One libp2p node of the p2p-chunks benchmark, run as a child process (its own event loop, as
// on a real machine). Driven over IPC by bench/p2p-chunks.ts; not meant to be run by hand.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../runtime/log.ts';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import {
  createMemoryChunkStore,
  createSlotflowPeer,
  loadOrCreatePeerKey,
  sha256Digest,
  type SlotflowPeer,
} from '../p2p/index.ts';
import type { ArtifactManifest } from '../schema/index.ts';
import { keyIdOf, trustKeys } from '../signing/index.ts';
import { issueEnrolment, nodeIdentityFromPeerKey } from '../signing/node-identity.ts';

/** Messages from the driver. */
export type ToNode =
  | {
      type: 'start';
      nodeId: string;
      bootstrap: string[];
      /** The mesh's pre-shared key, base64. */
      meshKey: string;
      /** The control-plane key that enrols every node of the bench (PKCS#8 PEM). */
      controlPlaneKey: string;
    }
  | { type: 'seed'; imageBytes: number; chunkBytes: number }
  | { type: 'fetch'; manifest: ArtifactManifest }
  | { type: 'stats' }
  | { type: 'stop' };

/** Messages to the driver. */
export type FromNode =
  | { type: 'ready'; addr: string; peerId: string }
  | { type: 'seeded'; manifest: ArtifactManifest }
  | { type: 'fetched'; ms: number; fetched: number; byPeer: Record<string, number> }
  | { type: 'stats'; chunksServed: number; bytesServed: number; redirected: number }
  | { type: 'error'; message: string };

const send = (m: FromNode): void => void process.send!(m);
let peer: SlotflowPeer | undefined;
let dir: string | undefined;
const log = createLogger('bench:p2p-node');
log.level = process.env['SLOTFLOW_LOG_LEVEL'] ?? 'error';

async function seed(imageBytes: number, chunkBytes: number): Promise<ArtifactManifest> {
  const whole = createHash('sha256');
  const chunks: ArtifactManifest['chunks'] = [];
  for (let offset = 0, index = 0; offset < imageBytes; offset += chunkBytes, index++) {
    const bytes = new Uint8Array(randomBytes(Math.min(chunkBytes, imageBytes - offset)));
    whole.update(bytes);
    const digest = sha256Digest(bytes);
    await peer!.chunks.store.put(digest, bytes);
    chunks.push({ index, size: bytes.length, digest });
  }
  const manifest: ArtifactManifest = {
    digest: `sha256:${whole.digest('hex')}`,
    size: imageBytes,
    format: 'raw',
    version: 'bench',
    chunkSize: chunkBytes,
    chunks,
  };
  await peer!.chunks.provide(manifest);
  return manifest;
}

process.on('message', (m: ToNode) => {
  void (async () => {
    try {
      switch (m.type) {
        case 'start': {
          dir = await mkdtemp(join(tmpdir(), 'slotflow-bench-p2p-'));
          // Enrolled like a real node, so peers count its chunk announcements.
          const privateKey = createPrivateKey(m.controlPlaneKey);
          const publicKey = createPublicKey(privateKey);
          const { key: peerKey } = await loadOrCreatePeerKey(join(dir, 'peer.key'));
          const enrolment = issueEnrolment(
            { nodeId: m.nodeId, publicKey: nodeIdentityFromPeerKey(peerKey).publicKey },
            { keyId: keyIdOf(publicKey), privateKey, publicKey },
          );
          peer = await createSlotflowPeer({
            nodeId: m.nodeId,
            dataDir: dir,
            listen: ['/ip4/127.0.0.1/tcp/0'],
            allowedNetworks: ['127.0.0.0/8'],
            bootstrap: m.bootstrap,
            meshKey: new Uint8Array(Buffer.from(m.meshKey, 'base64')),
            enrolment,
            trustedKeys: trustKeys(publicKey),
            chunkStore: createMemoryChunkStore(),
            log,
          });
          await peer.start();
          send({ type: 'ready', addr: peer.multiaddrs()[0]!, peerId: peer.peerId });
          return;
        }
        case 'seed':
          send({ type: 'seeded', manifest: await seed(m.imageBytes, m.chunkBytes) });
          return;
        case 'fetch': {
          // Wait for the seed's announcement, as an agent would after receiving its command.
          while (peer!.chunks.directory.holders(m.manifest.digest, 0).length === 0) await sleep(20);
          const t0 = performance.now();
          const report = await peer!.chunks.fetch({ manifest: m.manifest, deadline: Date.now() + 1_800_000 });
          send({
            type: 'fetched',
            ms: performance.now() - t0,
            fetched: report.fetched,
            byPeer: { ...report.byPeer },
          });
          return;
        }
        case 'stats': {
          const s = peer!.chunks.server.stats;
          send({
            type: 'stats',
            chunksServed: s.chunksServed,
            bytesServed: s.bytesServed,
            redirected: s.redirected,
          });
          return;
        }
        case 'stop':
          await peer?.stop();
          if (dir) await rm(dir, { recursive: true, force: true });
          process.exit(0);
      }
    } catch (err) {
      send({ type: 'error', message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    }
  })();
});
