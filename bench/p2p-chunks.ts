// Peer-to-peer chunk exchange and gossip latency, printed as JSON:
//
//   node bench/p2p-chunks.ts [--image-mib 256] [--chunk-kib 1024] [--nodes 16] [--gossip-peers 32]
//                            [--gossip-messages 100] [--throughput-mib 64]
//
// 1. Origin egress: one seed process and nodes-1 fetcher processes (own event loops) fetch the
//    image at once; reports bytes the origin uploaded against the image size (goal <= 1.1).
// 2. Throughput: one seed and one fetcher in this process, the image over /slotflow/chunk/1
//    (noise + yamux, sha256 verified) against the same bytes over raw loopback TCP (sha256 too).
// 3. Gossip: gossip-peers nodes in this process in a random mesh (fanout 3); the time for a signed
//    command to be delivered (validated) at every other peer; p50/p99/max.
// Everything stays on 127.0.0.1.
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import type { Message } from '@libp2p/gossipsub';
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
import type { FromNode, ToNode } from './p2p-node.ts';

const { values: args } = parseArgs({
  options: {
    'image-mib': { type: 'string', default: '256' },
    'chunk-kib': { type: 'string', default: '1024' },
    nodes: { type: 'string', default: '16' },
    'gossip-peers': { type: 'string', default: '32' },
    'gossip-messages': { type: 'string', default: '100' },
    'throughput-mib': { type: 'string', default: '64' },
    /** Run one part only: egress, throughput or gossip. */
    only: { type: 'string' },
  },
});
const say = (line: string): void => void process.stderr.write(`p2p-chunks: ${line}\n`);
const MiB = 1024 * 1024;
const imageBytes = Number(args['image-mib']) * MiB;
const chunkBytes = Number(args['chunk-kib']) * 1024;
const nodes = Number(args.nodes);

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
  }
  send(m: ToNode): void {
    this.proc.send(m);
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

async function originEgress(): Promise<Record<string, unknown>> {
  const children: Child[] = [];
  const addrs: string[] = [];
  try {
    for (let i = 0; i < nodes; i++) {
      const c = new Child();
      children.push(c);
      const picks = [...addrs].sort(() => Math.random() - 0.5).slice(0, 3);
      c.send({ type: 'start', nodeId: `bench-${i}`, bootstrap: picks });
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
    return {
      nodes,
      imageBytes,
      chunkBytes,
      chunks: manifest.chunks.length,
      originEgressBytes: originBytes,
      originEgressRatio: +(originBytes / imageBytes).toFixed(3),
      originRedirects: stats[0]!.redirected,
      totalUploadedBytes: stats.reduce((n, s) => n + s.bytesServed, 0),
      wallMs: Math.round(wallMs),
      perFetcherMs: {
        min: Math.round(Math.min(...results.map((r) => r.ms))),
        max: Math.round(Math.max(...results.map((r) => r.ms))),
      },
      aggregateMiBps: +(((imageBytes * fetchers.length) / MiB / wallMs) * 1000).toFixed(1),
    };
  } finally {
    for (const c of children) c.send({ type: 'stop' });
    await Promise.all(children.map((c) => (c.proc.exitCode === null ? once(c.proc, 'exit') : undefined)));
  }
}

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
  const concurrency = 8;
  const t0 = performance.now();
  // One connection per in-flight request, as streams are in the libp2p case.
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
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
  const ms = performance.now() - t0;
  server.close();
  return ms;
}

async function throughput(): Promise<Record<string, unknown>> {
  const bytes = Number(args['throughput-mib']) * MiB;
  const key = await controlPlaneKey();
  const seed = await startPeer('tp-seed', key, { chunkStore: createMemoryChunkStore() });
  const fetcher = await startPeer('tp-fetch', key, {
    chunkStore: createMemoryChunkStore(),
    bootstrap: [seed.multiaddrs()[0]!],
  });
  try {
    await waitForMesh([seed, fetcher]);
    const chunks: Uint8Array[] = [];
    const whole = createHash('sha256');
    const list: ArtifactManifest['chunks'] = [];
    for (let off = 0, i = 0; off < bytes; off += chunkBytes, i++) {
      const c = new Uint8Array(randomBytes(Math.min(chunkBytes, bytes - off)));
      whole.update(c);
      chunks.push(c);
      list.push({ index: i, size: c.length, digest: sha256Digest(c) });
      await seed.chunks.store.put(list[i]!.digest, c);
    }
    const manifest: ArtifactManifest = {
      digest: `sha256:${whole.digest('hex')}`,
      size: bytes,
      format: 'raw',
      version: 'bench',
      chunkSize: chunkBytes,
      chunks: list,
    };
    await seed.chunks.provide(manifest);
    while (fetcher.chunks.directory.holders(manifest.digest, 0).length === 0)
      await new Promise((r) => setTimeout(r, 20));
    const t0 = performance.now();
    await fetcher.chunks.fetch({ manifest });
    const libp2pMs = performance.now() - t0;
    const tcpMs = await rawTcp(manifest, chunks);
    const libp2pMiBps = bytes / MiB / (libp2pMs / 1000);
    const tcpMiBps = bytes / MiB / (tcpMs / 1000);
    return {
      bytes,
      chunkBytes,
      note: 'both ends in one process (one core); sha256 of every chunk on the receiving side in both',
      libp2pMiBps: +libp2pMiBps.toFixed(1),
      rawTcpMiBps: +tcpMiBps.toFixed(1),
      libp2pToRawRatio: +(libp2pMiBps / tcpMiBps).toFixed(3),
    };
  } finally {
    await stopAll([seed, fetcher]);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function gossipLatency(): Promise<Record<string, unknown>> {
  const count = Number(args['gossip-peers']);
  const messages = Number(args['gossip-messages']);
  const key = await controlPlaneKey();
  const peers: SlotflowPeer[] = await startMesh(count, key);
  try {
    // Delivery = the 'message' event, which gossipsub fires after our validator accepted it.
    const arrivals = new Map<string, number[]>();
    for (const p of peers) {
      p.node.pubsub.addEventListener('message', (evt: CustomEvent<Message>) => {
        if (evt.detail.topic !== COMMANDS_TOPIC) return;
        const id = createHash('sha256').update(evt.detail.data).digest('hex');
        arrivals.get(id)?.push(performance.now());
      });
    }
    const latencies: number[] = [];
    for (let i = 0; i < messages; i++) {
      const from = peers[Math.floor(Math.random() * peers.length)]!;
      const signed = upgradeCommand(key, `node-${(i % count) + 1}`, `r-bench-${i}`);
      const data = JSON.stringify({ v: 1, type: 'command', signed });
      const id = createHash('sha256').update(data).digest('hex');
      arrivals.set(id, []);
      const t0 = performance.now();
      await from.commands.publishCommand(signed);
      const deadline = Date.now() + 10_000;
      while (arrivals.get(id)!.length < count - 1 && Date.now() < deadline)
        await new Promise((r) => setImmediate(r));
      const got = arrivals.get(id)!;
      latencies.push(got.length < count - 1 ? Infinity : Math.max(...got) - t0);
      if (got.length < count - 1) say(`command ${i} reached ${got.length} of ${count - 1} peers in 10 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      peers: count,
      messages,
      note: 'all peers in one process; random mesh, each peer bootstraps to 3 earlier ones',
      reachedAll: latencies.filter(Number.isFinite).length,
      p50Ms: +percentile(sorted, 50).toFixed(1),
      p99Ms: +percentile(sorted, 99).toFixed(1),
      maxMs: +sorted[sorted.length - 1]!.toFixed(1),
    };
  } finally {
    await stopAll(peers);
  }
}

const want = (part: string): boolean => args.only === undefined || args.only === part;
const result: Record<string, unknown> = { bench: 'p2p-chunks', at: new Date().toISOString() };
if (want('egress')) {
  say(`origin egress: ${nodes} node processes, ${args['image-mib']} MiB image`);
  result['originEgress'] = await originEgress();
}
if (want('throughput')) {
  say(`throughput: ${args['throughput-mib']} MiB over libp2p and raw TCP`);
  result['throughput'] = await throughput();
}
if (want('gossip')) {
  say(`gossip: ${args['gossip-peers']} peers, ${args['gossip-messages']} commands`);
  result['gossip'] = await gossipLatency();
}
await cleanupDirs();
console.log(JSON.stringify(result, null, 2));
process.exit(0);
