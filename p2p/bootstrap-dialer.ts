import type { Libp2p, PeerId } from '@libp2p/interface';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { Logger } from 'pino';
import { describeError, P2pConfigError } from './errors.ts';

/** Keeps this node connected to its bootstrap peers (and to peers found by discovery). */
export interface BootstrapDialer {
  start(): void;
  stop(): void;
  /** Dials every bootstrap address that has no live connection now; resolves when all tried. */
  dialAll(): Promise<void>;
}

interface Target {
  readonly addr: Multiaddr;
  /** Known from the address, or learnt from the first connection made through it. */
  peer: PeerId | string | undefined;
}

function peerIdOf(ma: Multiaddr): string | undefined {
  return ma.getComponents().findLast((c) => c.name === 'p2p')?.value;
}

/**
 * Dials each bootstrap address and re-dials it whenever its connection is gone, every
 * `intervalMs`. Addresses without `/p2p/<peer id>` are dialled as they are: libp2p learns the
 * remote peer from the noise handshake, and the dialer remembers it to tell whether that peer
 * is still connected. Peers found by discovery (mDNS) are dialled once when found.
 */
export function createBootstrapDialer(init: {
  libp2p: Libp2p;
  addrs: readonly string[];
  intervalMs: number;
  log: Logger;
}): BootstrapDialer {
  const { libp2p, log } = init;
  const targets: Target[] = init.addrs.map((text) => {
    let addr: Multiaddr;
    try {
      addr = multiaddr(text);
    } catch (err) {
      throw new P2pConfigError(
        `bootstrap address '${text}': expected a multiaddr such as /ip4/10.0.0.5/tcp/4001 or /dns4/agent-1/tcp/4001`,
        { cause: err },
      );
    }
    return { addr, peer: peerIdOf(addr) };
  });
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let dialling: Promise<void> | undefined;

  const connected = (t: Target): boolean =>
    t.peer !== undefined &&
    libp2p
      .getConnections()
      .some((c) => c.remotePeer.toString() === t.peer!.toString() && c.status === 'open');

  async function dialOne(t: Target): Promise<void> {
    if (connected(t)) return;
    try {
      const conn = await libp2p.dial(t.addr, { signal: AbortSignal.timeout(10_000) });
      if (t.peer === undefined)
        log.info({ addr: t.addr.toString(), peer: conn.remotePeer.toString() }, 'bootstrap peer');
      t.peer = conn.remotePeer;
    } catch (err) {
      log.debug(
        { addr: t.addr.toString(), err: describeError(err) },
        'bootstrap dial failed; retrying later',
      );
    }
  }

  const dialAll = (): Promise<void> => {
    dialling ??= Promise.all(targets.map(dialOne))
      .then(() => undefined)
      .finally(() => {
        dialling = undefined;
      });
    return dialling;
  };

  const onDiscovery = (evt: CustomEvent<{ id: PeerId }>): void => {
    const id = evt.detail.id;
    if (libp2p.getConnections(id).length > 0) return;
    libp2p.dial(id, { signal: AbortSignal.timeout(10_000) }).catch((err: unknown) => {
      log.debug({ peer: id.toString(), err: describeError(err) }, 'dial of a discovered peer failed');
    });
  };

  return {
    dialAll,
    start() {
      if (running) return;
      running = true;
      libp2p.addEventListener('peer:discovery', onDiscovery);
      void dialAll();
      if (targets.length > 0) {
        timer = setInterval(() => void dialAll(), init.intervalMs);
        timer.unref();
      }
    },
    stop() {
      running = false;
      libp2p.removeEventListener('peer:discovery', onDiscovery);
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
