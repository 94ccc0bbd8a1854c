import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { gossipsub, type GossipSub, type Message } from '@libp2p/gossipsub';
import { createTopicScoreParams } from '@libp2p/gossipsub/score';
import { identify, type Identify } from '@libp2p/identify';
import type { Libp2p } from '@libp2p/interface';
import { mdns } from '@libp2p/mdns';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { createLibp2p } from 'libp2p';
import type { Logger } from 'pino';
import { createLogger } from '../runtime/log.ts';
import { P2pConfigError } from './errors.ts';
import { fixPnetCipher } from './pnet-cipher-fix.ts';
import { createBootstrapDialer, type BootstrapDialer } from './bootstrap-dialer.ts';
import { createNetworkGater, type GaterStats } from './gater.ts';
import { loadOrCreatePeerKey } from './identity.ts';
import { allowedNetworks, DEFAULT_ALLOWED_NETWORKS, type AllowedNetworks } from './networks.ts';
import { ALL_TOPICS, COMMANDS_TOPIC } from './topics.ts';

/** Default TCP listen address of an agent's libp2p node (docker-compose maps it). */
export const DEFAULT_P2P_LISTEN = '/ip4/0.0.0.0/tcp/4001';

/** How a node joins the mesh. */
export interface P2pNodeInit {
  /** Directory for the node's identity (`peer.key`, mode 0600), kept across restarts. */
  readonly dataDir: string;
  /** Multiaddrs to listen on (default `/ip4/0.0.0.0/tcp/4001`); `[]` listens on relays only. */
  readonly listen?: readonly string[];
  /** Addresses to advertise instead of the listen addresses (e.g. behind port forwarding). */
  readonly announce?: readonly string[];
  /**
   * Peers to connect to and stay connected to. A multiaddr may omit `/p2p/<peer id>`
   * (`/dns4/agent-1/tcp/4001`): the peer id is then learnt from the handshake.
   */
  readonly bootstrap?: readonly string[];
  /**
   * The fleet's pre-shared key (libp2p swarm key, see mesh-key.ts): every connection is
   * encrypted with it before anything else is said, so a peer without it cannot connect at all.
   */
  readonly meshKey?: Uint8Array;
  /** Run without a mesh key: any peer on the allowed networks may connect. Must be asked for. */
  readonly openMesh?: boolean;
  /** Discover peers on the local link with mDNS (off by default). */
  readonly mdns?: boolean;
  /** CIDRs the node may dial and accept connections from (default: loopback and private ranges). */
  readonly allowedNetworks?: readonly string[];
  readonly relay?: {
    /** Serve as a circuit relay v2 for peers that cannot be dialled directly (default false). */
    readonly serve?: boolean;
    /** Reserve a slot on a connected relay and advertise the relayed address (for nodes behind NAT). */
    readonly reserve?: boolean;
    /** Reservations a relay accepts (default 64). */
    readonly maxReservations?: number;
  };
  /** How often the bootstrap list is re-dialled when a connection is gone (default 5 s). */
  readonly redialIntervalMs?: number;
  /** Gossipsub heartbeat (default 700 ms: a cut-off site wants commands fast, traffic is tiny). */
  readonly gossipHeartbeatMs?: number;
  readonly log?: Logger;
}

/** The libp2p services slotflow uses. */
export interface P2pServices extends Record<string, unknown> {
  identify: Identify;
  pubsub: GossipSub;
}

/** A started-or-stoppable libp2p node with slotflow's transports, security and gossip. */
export interface P2pNode {
  readonly libp2p: Libp2p<P2pServices>;
  readonly pubsub: GossipSub;
  /** This node's peer id (stable across restarts). */
  readonly peerId: string;
  readonly networks: AllowedNetworks;
  readonly log: Logger;
  readonly gaterStats: GaterStats;
  readonly bootstrap: BootstrapDialer;
  /** The node's addresses including `/p2p/<peer id>` (relayed ones included once reserved). */
  multiaddrs(): string[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Message ids decide what gossipsub drops as seen. Commands and plans are re-gossiped by many
 * agents, so their id is the content alone: a copy re-published by another agent is a duplicate.
 * Everything else is bound to its author and to one announcement (the author's sequence number):
 * the same bytes from another peer are another message, so a peer cannot suppress a genuine
 * report by publishing its copy first; and an author's re-announcement of the same report is a
 * new message, so it reaches peers that missed the first one (gossipsub drops a republished id
 * as a duplicate for its whole seen-TTL, two minutes, which left late joiners waiting).
 */
function messageId(msg: Message): Uint8Array {
  const h = createHash('sha256');
  h.update(msg.topic);
  if (msg.topic !== COMMANDS_TOPIC && msg.type === 'signed') {
    h.update(msg.from.toMultihash().bytes);
    h.update(msg.sequenceNumber.toString(16));
  }
  h.update(msg.data);
  return h.digest();
}

const INVALID_ONLY_SCORE = createTopicScoreParams({
  topicWeight: 1,
  timeInMeshWeight: 0,
  firstMessageDeliveriesWeight: 0,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  invalidMessageDeliveriesWeight: -10,
  invalidMessageDeliveriesDecay: 0.9,
});

/** Creates (but does not start) a libp2p node; the identity is loaded or created in `dataDir`. */
export async function createP2pNode(init: P2pNodeInit): Promise<P2pNode> {
  const log = init.log ?? createLogger('p2p:node');
  if (init.meshKey) fixPnetCipher();
  if (!init.meshKey && !init.openMesh) {
    throw new P2pConfigError(
      'expected the mesh pre-shared key (meshKey) to join a closed mesh; give the agent --mesh-key FILE ' +
        "(made by 'slotflow keys mesh-init'), or set openMesh to run a mesh any peer may join",
    );
  }
  const networks = allowedNetworks(init.allowedNetworks ?? DEFAULT_ALLOWED_NETWORKS);
  const { gater, stats } = createNetworkGater(networks, log);
  const { key } = await loadOrCreatePeerKey(join(init.dataDir, 'peer.key'));
  const listen = [...(init.listen ?? [DEFAULT_P2P_LISTEN])];
  if (init.relay?.reserve) listen.push('/p2p-circuit');

  const services: Record<string, (components: never) => unknown> = {
    identify: identify(),
    pubsub: gossipsub({
      globalSignaturePolicy: 'StrictSign',
      msgIdFn: messageId,
      allowPublishToZeroTopicPeers: true,
      ignoreDuplicatePublishError: true,
      emitSelf: false,
      floodPublish: true,
      fallbackToFloodsub: false,
      runOnLimitedConnection: true,
      heartbeatInterval: init.gossipHeartbeatMs ?? 700,
      // Fleet tuning. Agents of a site often reach each other from one address (behind NAT, via
      // a relay, or all on one test host): gossipsub's IP-colocation penalty would score them
      // negative and prune them from every mesh, cutting well-connected nodes off. Peers here
      // are fleet members and every message is checked on its own, so the penalty is off.
      scoreParams: {
        IPColocationFactorWeight: 0,
        // Only invalid messages count against a peer: three forged commands in a row put it under
        // the graylist threshold (everything it sends is ignored) for about a minute. Delivery
        // rates are not scored: command and lease topics are quiet most of the time.
        topics: Object.fromEntries(ALL_TOPICS.map((topic) => [topic, INVALID_ONLY_SCORE])),
      },
      D: 8,
      Dlo: 5,
      Dhi: 16,
      allowedTopics: ALL_TOPICS as string[],
    }),
  };
  if (init.relay?.serve) {
    services['relay'] = circuitRelayServer({
      // Relayed links carry chunks and gossip for as long as a site is cut off: no data or
      // time limit, unlike the public-network defaults (128 KiB, 2 minutes).
      reservations: { applyDefaultLimit: false, maxReservations: init.relay.maxReservations ?? 64 },
    });
  }
  const peerDiscovery = init.mdns ? [mdns()] : [];

  const libp2p = (await createLibp2p({
    start: false,
    privateKey: key,
    addresses: { listen, announce: init.announce ? [...init.announce] : [] },
    transports: [tcp(), circuitRelayTransport()],
    ...(init.meshKey ? { connectionProtector: preSharedKey({ psk: init.meshKey }) } : {}),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: gater,
    peerDiscovery,
    services: services as NonNullable<Parameters<typeof createLibp2p>[0]>['services'],
  })) as unknown as Libp2p<P2pServices>;

  const peerId = libp2p.peerId.toString();
  const nodeLog = log.child({ peerId });
  const bootstrap = createBootstrapDialer({
    libp2p,
    addrs: init.bootstrap ?? [],
    intervalMs: init.redialIntervalMs ?? 5_000,
    log: nodeLog,
  });

  return {
    libp2p,
    pubsub: libp2p.services.pubsub,
    peerId,
    networks,
    log: nodeLog,
    gaterStats: stats,
    bootstrap,
    multiaddrs: () => libp2p.getMultiaddrs().map((ma) => ma.toString()),
    async start() {
      await libp2p.start();
      for (const topic of ALL_TOPICS) libp2p.services.pubsub.subscribe(topic);
      bootstrap.start();
      nodeLog.info(
        { addrs: libp2p.getMultiaddrs().map(String), mesh: init.meshKey ? 'closed' : 'open' },
        'p2p node started',
      );
    },
    async stop() {
      bootstrap.stop();
      await libp2p.stop();
    },
  };
}
