// Peer-to-peer chunk exchange and gossip latency (not a test):
//
//   node bench/p2p-chunks.ts [--json] [--quick] [--image-mib 256] [--chunk-kib 1024] [--nodes 16]
//                            [--gossip-peers 32] [--gossip-messages 200] [--throughput-mib 128]
//                            [--rounds 3] [--only egress|throughput|gossip]
//
// 1. Origin egress: one seed process and nodes-1 fetcher processes (own event loops) fetch the
//    image at once; reports bytes the origin uploaded against the image size (goal <= 1.1).
// 2. Throughput: one seed and one fetcher in this process, the image over /slotflow/chunk/1
//    (noise + yamux, sha256 verified) against the same bytes over raw loopback TCP (sha256 too),
//    in turns, best of the rounds.
// 3. Gossip: gossip-peers nodes in this process in a random mesh (fanout 3); the time for a signed
//    command to be delivered (validated) at every other peer; p99 against the 200 ms goal the
//    NATS path is held to.
// --quick runs smaller sizes (64 MiB, 8 nodes, 16 gossip peers); any size option overrides.
// Everything stays on 127.0.0.1. With --json, stdout is one `{ figures }` document (the contract
// in bench/external.ts); without it, the figures with every part's raw numbers. Progress goes to
// stderr either way.
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import type { Message } from '@libp2p/gossipsub';
import { generateKey } from '@libp2p/pnet';
import { COMMANDS_TOPIC, createMemoryChunkStore, sha256Digest, type SlotflowPeer } from '../p2p/index.ts';
import type { ArtifactManifest } from '../schema/index.ts';
import {
  cleanupDirs,
  controlPlaneKey,
  startMesh,
  startPeer,
  stopAll,
  waitForMesh,
  upgradeCommand,
} from '../test/p2p/helpers.ts';
import { GOSSIP_GOAL_MS, p2pFigures } from './external.ts';
import { measured, notMeasured, round, type Figure, type FigureSpec } from './figure.ts';
import type { FromNode, ToNode } from './p2p-node.ts';
import { best, latencySummary, percentile } from './stats.ts';

const MiB = 1024 * 1024;
const PARTS = ['egress', 'throughput', 'gossip'] as const;
type Part = (typeof PARTS)[number];

/** Sizes by run kind; every one can be overridden on the command line. */
const SIZES = {
  full: { imageMib: 256, nodes: 16, gossipPeers: 32, gossipMessages: 200, throughputMib: 128, rounds: 3 },
  quick: { imageMib: 64, nodes: 8, gossipPeers: 16, gossipMessages: 100, throughputMib: 32, rounds: 2 },
};

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    'image-mib': { type: 'string' },
    'chunk-kib': { type: 'string', default: '1024' },
    nodes: { type: 'string' },
    'gossip-peers': { type: 'string' },
    'gossip-messages': { type: 'string' },
    'throughput-mib': { type: 'string' },
    rounds: { type: 'string' },
    /** Run one part only: egress, throughput or gossip. */
    only: { type: 'string' },
  },
});
const say = (line: string): void => void process.stderr.write(`p2p-chunks: ${line}\n`);
const defaults = args.quick ? SIZES.quick : SIZES.full;

/** A whole-number option, at least `min`; the default for the run kind when absent. */
function count(name: string, given: string | undefined, fallback: number, min: number): number {
  if (given === undefined) return fallback;
  const n = Number(given);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`p2p-chunks: --${name} takes a whole number of at least ${min}, got "${given}"\n`);
    process.exit(2);
  }
  return n;
}

const imageBytes = count('image-mib', args['image-mib'], defaults.imageMib, 1) * MiB;
const chunkBytes = count('chunk-kib', args['chunk-kib'], 1024, 1) * 1024;
const nodes = count('nodes', args.nodes, defaults.nodes, 2);
const gossipPeers = count('gossip-peers', args['gossip-peers'], defaults.gossipPeers, 2);
const gossipMessages = count('gossip-messages', args['gossip-messages'], defaults.gossipMessages, 1);
const throughputBytes = count('throughput-mib', args['throughput-mib'], defaults.throughputMib, 1) * MiB;
const rounds = count('rounds', args.rounds, defaults.rounds, 1);
if (args.only !== undefined && !PARTS.includes(args.only as Part)) {
  process.stderr.write(`p2p-chunks: --only takes one of ${PARTS.join(', ')}, got "${args.only}"\n`);
  process.exit(2);
}

/** The promised figure, titled with this run's sizes. */
function spec(id: string, title: string): FigureSpec {
  const promised = p2pFigures.find((f) => f.id === id);
  if (!promised) throw new Error(`bench/external.ts promises no P2P figure ${id}`);
  return { ...promised, title };
}
const specs: Record<Part, FigureSpec> = {
  egress: spec('p2p-origin-egress', `origin egress with P2P, ${nodes} agents`),
  throughput: spec('p2p-chunk-transfer', 'chunk transfer over libp2p'),
  gossip: spec('p2p-gossip-p99', `gossiped signed command reaches all ${gossipPeers} peers, p99`),
};

class Child {
  readonly proc: ChildProcess;
  private readonly inbox: FromNode[] = [];
  private waiter: (() => void) | undefined;
  constructor() {
    this.proc = fork(new URL('./p2p-node.ts', import.meta.url), {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.proc.on('message', (m: FromNode) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    this.proc.on('exit', (code) => {
      this.inbox.push({ type: 'error', message: `exited with code ${code}` });
      this.waiter?.();
    });
  }
  send(m: ToNode): void {
    if (this.proc.connected) this.proc.send(m);
  }
  async next<T extends FromNode['type']>(type: T): Promise<Extract<FromNode, { type: T }>> {
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type || m.type === 'error');
      if (i >= 0) {
        const m = this.inbox.splice(i, 1)[0]!;
        if (m.type === 'error') throw new Error(`bench node: ${m.message}`);
        return m as Extract<FromNode, { type: T }>;
      }
      await new Promise<void>((r) => (this.waiter = r));
    }
  }
}

// The mesh key and the control-plane key that enrols every bench node.
const fleetKeys = (() => {
  const meshKey = new Uint8Array(95);
  generateKey(meshKey);
  const { privateKey } = generateKeyPairSync('ed25519');
  return {
    meshKey: Buffer.from(meshKey).toString('base64'),
    controlPlaneKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
})();

async function originEgress(): Promise<Figure> {
  const children: Child[] = [];
  const addrs: string[] = [];
  try {
    for (let i = 0; i < nodes; i++) {
      const c = new Child();
      children.push(c);
      const picks = [...addrs].sort(() => Math.random() - 0.5).slice(0, 3);
      c.send({ type: 'start', nodeId: `bench-${i}`, bootstrap: picks, ...fleetKeys });
      addrs.push((await c.next('ready')).addr);
    }
    await new Promise((r) => setTimeout(r, 2_000)); // gossip meshes graft
    const [origin, ...fetchers] = children as [Child, ...Child[]];
    origin.send({ type: 'seed', imageBytes, chunkBytes });
    const { manifest } = await origin.next('seeded');
    const t0 = performance.now();
    for (const f of fetchers) f.send({ type: 'fetch', manifest });
    const results = await Promise.all(fetchers.map((f) => f.next('fetched')));
    const wallMs = performance.now() - t0;
    for (const c of children) c.send({ type: 'stats' });
    const stats = await Promise.all(children.map((c) => c.next('stats')));
    const originBytes = stats[0]!.bytesServed;
    return measured(
      specs.egress,
      { amount: round(originBytes / MiB, 1), unit: 'MiB' },
      { amount: round(imageBytes / MiB, 1), unit: 'MiB' },
      {
        ratio: originBytes / imageBytes,
        reason: `1 seed and ${fetchers.length} fetchers, each its own process; the image reached all of them in ${round(wallMs / 1000, 1)} s`,
        details: {
          nodes,
          imageBytes,
          chunkBytes,
          chunks: manifest.chunks.length,
          originEgressBytes: originBytes,
          originRedirects: stats[0]!.redirected,
          totalUploadedBytes: stats.reduce((n, s) => n + s.bytesServed, 0),
          wallMs: Math.round(wallMs),
          perFetcherMs: {
            min: Math.round(Math.min(...results.map((r) => r.ms))),
            max: Math.round(Math.max(...results.map((r) => r.ms))),
          },
          aggregateMiBps: round(((imageBytes * fetchers.length) / MiB / wallMs) * 1000, 1),
        },
      },
    );
  } finally {
    for (const c of children) c.send({ type: 'stop' });
    await Promise.all(children.map((c) => (c.proc.exitCode === null ? once(c.proc, 'exit') : undefined)));
  }
}

/** Requests in flight over raw TCP: what the chunk fetcher allows to one peer by default. */
const RAW_IN_FLIGHT = 4;

/** Milliseconds to fetch every chunk over raw loopback TCP, verifying each as the fetcher does. */
async function rawTcp(manifest: ArtifactManifest, chunks: Uint8Array[]): Promise<number> {
  // Same exchange as the chunk protocol, minus libp2p: 4-byte index request, length-prefixed reply.
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4) {
        const i = buf.readUInt32BE(0);
        buf = buf.subarray(4);
        const body = chunks[i]!;
        const head = Buffer.alloc(4);
        head.writeUInt32BE(body.length);
        sock.write(head);
        sock.write(body);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const t0 = performance.now();
  // One connection per in-flight request, as streams are in the libp2p case.
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: RAW_IN_FLIGHT }, async () => {
        const sock = connect(port, '127.0.0.1');
        await once(sock, 'connect');
        // Pieces are kept as they arrive and joined once per chunk (no quadratic copying).
        const pieces: Buffer[] = [];
        let buffered = 0;
        let pending: (() => void) | undefined;
        sock.on('data', (d: Buffer) => {
          pieces.push(d);
          buffered += d.length;
          pending?.();
        });
        const take = async (n: number): Promise<Buffer> => {
          while (buffered < n) await new Promise<void>((r) => (pending = r));
          const all = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
          pieces.length = 0;
          const out = all.subarray(0, n);
          if (all.length > n) pieces.push(all.subarray(n));
          buffered -= n;
          return out;
        };
        while (next < manifest.chunks.length) {
          const index = next++;
          const req = Buffer.alloc(4);
          req.writeUInt32BE(index);
          sock.write(req);
          const want = (await take(4)).readUInt32BE(0);
          const body = await take(want);
          if (sha256Digest(body) !== manifest.chunks[index]!.digest) throw new Error('raw tcp: bad chunk');
        }
        sock.end();
      }),
    );
    return performance.now() - t0;
  } finally {
    server.close();
  }
}

/** Milliseconds for a fresh fetcher to take every chunk from a fresh seed over libp2p. */
async function libp2pFetch(manifest: ArtifactManifest, chunks: Uint8Array[]): Promise<number> {
  const key = await controlPlaneKey();
  const seed = await startPeer('tp-seed', key, { chunkStore: createMemoryChunkStore() });
  const fetcher = await startPeer('tp-fetch', key, {
    chunkStore: createMemoryChunkStore(),
    bootstrap: [seed.multiaddrs()[0]!],
  });
  try {
    await waitForMesh([seed, fetcher]);
    for (const [i, c] of chunks.entries()) await seed.chunks.store.put(manifest.chunks[i]!.digest, c);
    await seed.chunks.provide(manifest);
    while (fetcher.chunks.directory.holders(manifest.digest, 0).length === 0)
      await new Promise((r) => setTimeout(r, 20));
    const t0 = performance.now();
    await fetcher.chunks.fetch({ manifest });
    return performance.now() - t0;
  } finally {
    await stopAll([seed, fetcher]);
  }
}

async function throughput(): Promise<Figure> {
  const chunks: Uint8Array[] = [];
  const whole = createHash('sha256');
  const list: ArtifactManifest['chunks'] = [];
  for (let off = 0, i = 0; off < throughputBytes; off += chunkBytes, i++) {
    const c = new Uint8Array(randomBytes(Math.min(chunkBytes, throughputBytes - off)));
    whole.update(c);
    chunks.push(c);
    list.push({ index: i, size: c.length, digest: sha256Digest(c) });
  }
  const manifest: ArtifactManifest = {
    digest: `sha256:${whole.digest('hex')}`,
    size: throughputBytes,
    format: 'raw',
    version: 'bench',
    chunkSize: chunkBytes,
    chunks: list,
  };
  const mibps = (ms: number) => throughputBytes / MiB / (ms / 1000);
  const libp2p: number[] = [];
  const tcp: number[] = [];
  // In turns, so a burst of load from elsewhere hits both alike.
  for (let r = 0; r < rounds; r++) {
    libp2p.push(mibps(await libp2pFetch(manifest, chunks)));
    tcp.push(mibps(await rawTcp(manifest, chunks)));
  }
  return measured(
    specs.throughput,
    { amount: round(best(libp2p), 1), unit: 'MiB/s' },
    { amount: round(best(tcp), 1), unit: 'MiB/s' },
    {
      reason:
        'both ends in one process (one event loop); sha256 of every chunk on the receiving side in both',
      details: {
        bytes: throughputBytes,
        chunkBytes,
        rounds,
        samplesMiBps: { libp2p: libp2p.map((v) => round(v, 1)), rawTcp: tcp.map((v) => round(v, 1)) },
        transport: `libp2p tcp + noise + yamux, /slotflow/chunk/1 with the fetcher's defaults (one seed: ${RAW_IN_FLIGHT} requests in flight); raw: ${RAW_IN_FLIGHT} connections, one request each at a time`,
      },
    },
  );
}

/** The signature a command gossip message carries, or undefined for anything else. */
function signatureOf(data: Uint8Array): string | undefined {
  try {
    const m = JSON.parse(new TextDecoder().decode(data)) as { signed?: { signature?: unknown } };
    return typeof m.signed?.signature === 'string' ? m.signed.signature : undefined;
  } catch {
    return undefined;
  }
}

async function gossipLatency(): Promise<Figure> {
  const key = await controlPlaneKey();
  const peers: SlotflowPeer[] = await startMesh(gossipPeers, key);
  const waitMs = 10_000;
  try {
    // Delivery = the 'message' event, which gossipsub fires after our validator accepted it.
    const arrivals = new Map<string, number[]>();
    for (const p of peers) {
      p.node.pubsub.addEventListener('message', (evt: CustomEvent<Message>) => {
        if (evt.detail.topic !== COMMANDS_TOPIC) return;
        const signature = signatureOf(evt.detail.data);
        if (signature) arrivals.get(signature)?.push(performance.now());
      });
    }
    const latencies: number[] = [];
    let missed = 0;
    for (let i = 0; i < gossipMessages; i++) {
      const from = peers[Math.floor(Math.random() * peers.length)]!;
      const signed = upgradeCommand(key, `node-${(i % gossipPeers) + 1}`, `r-bench-${i}`);
      const got: number[] = [];
      arrivals.set(signed.signature, got);
      const t0 = performance.now();
      await from.commands.publishCommand(signed);
      const deadline = Date.now() + waitMs;
      while (got.length < gossipPeers - 1 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      arrivals.delete(signed.signature);
      if (got.length < gossipPeers - 1) {
        missed++;
        say(`command ${i} reached ${got.length} of ${gossipPeers - 1} peers in ${waitMs / 1000} s`);
        if (i === 2 && missed === 3) throw new Error('the first three commands reached no peer in time');
        latencies.push(Infinity);
      } else {
        latencies.push(Math.max(...got) - t0);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const reached = latencies.filter(Number.isFinite);
    const p99 = percentile(latencies, 99);
    const summary = latencySummary(reached);
    const details = {
      peers: gossipPeers,
      messages: gossipMessages,
      reachedAll: reached.length,
      reachedAllMs: summary,
      note: 'all peers in one process (one event loop validates every copy); random mesh, each peer bootstraps to 3 earlier ones',
    };
    if (p99 === undefined || !Number.isFinite(p99)) {
      return notMeasured(
        specs.gossip,
        'failed',
        `${missed} of ${gossipMessages} commands did not reach every peer within ${waitMs / 1000} s`,
        details,
      );
    }
    return measured(
      specs.gossip,
      { amount: round(p99, 1), unit: 'ms' },
      { amount: GOSSIP_GOAL_MS, unit: 'ms' },
      { reason: `${gossipMessages} commands from random peers; p50 ${summary.p50} ms`, details },
    );
  } finally {
    await stopAll(peers);
  }
}

const runs: Record<Part, { line: string; run: () => Promise<Figure> }> = {
  egress: {
    line: `origin egress: ${nodes} node processes, ${imageBytes / MiB} MiB image`,
    run: originEgress,
  },
  throughput: {
    line: `throughput: ${throughputBytes / MiB} MiB over libp2p and raw TCP, ${rounds} rounds`,
    run: throughput,
  },
  gossip: { line: `gossip: ${gossipPeers} peers, ${gossipMessages} commands`, run: gossipLatency },
};

const figures: Figure[] = [];
for (const part of PARTS) {
  if (args.only !== undefined && args.only !== part) {
    figures.push(notMeasured(specs[part], 'unavailable', `skipped: --only ${args.only}`));
    continue;
  }
  say(runs[part].line);
  // A part that breaks fails its own figure only.
  figures.push(
    await runs[part].run().catch((err: unknown) => {
      say(`${part} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return notMeasured(specs[part], 'failed', err instanceof Error ? err.message : String(err));
    }),
  );
}
await cleanupDirs();
process.stdout.write(`${JSON.stringify({ figures }, null, args.json ? 0 : 2)}\n`);
process.exit(0);
