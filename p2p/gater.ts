import type { ConnectionGater, MultiaddrConnection } from '@libp2p/interface';
import type { Logger } from 'pino';
import type { AllowedNetworks } from './networks.ts';

/** Counts of what the gater refused, for metrics and tests. */
export interface GaterStats {
  deniedDials: number;
  deniedInbound: number;
}

/**
 * A connection gater that keeps the mesh on the allowed networks: it refuses to dial an address
 * outside them, refuses inbound connections from outside them, and keeps peers' advertised
 * addresses outside them out of the peer store.
 */
export function createNetworkGater(
  networks: AllowedNetworks,
  log: Logger,
): { gater: ConnectionGater; stats: GaterStats } {
  const stats: GaterStats = { deniedDials: 0, deniedInbound: 0 };
  const inboundDenied = async (maConn: MultiaddrConnection): Promise<boolean> => {
    if (await networks.allowsMultiaddr(maConn.remoteAddr)) return false;
    stats.deniedInbound++;
    log.warn(
      { remote: maConn.remoteAddr.toString(), allowed: networks.cidrs },
      'refused an inbound connection from outside the allowed networks',
    );
    return true;
  };
  return {
    stats,
    gater: {
      async denyDialMultiaddr(ma) {
        if (await networks.allowsMultiaddr(ma)) return false;
        stats.deniedDials++;
        log.debug({ addr: ma.toString() }, 'not dialling an address outside the allowed networks');
        return true;
      },
      denyInboundConnection: inboundDenied,
      async denyOutboundConnection(_peer, maConn) {
        return !(await networks.allowsMultiaddr(maConn.remoteAddr));
      },
      async filterMultiaddrForPeer(_peer, ma) {
        return networks.allowsMultiaddr(ma);
      },
    },
  };
}
