import { BlockList, isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import type { Multiaddr } from '@multiformats/multiaddr';
import { P2pConfigError } from './errors.ts';

/**
 * Networks a fleet mesh lives on by default: loopback, the private IPv4 ranges, carrier-grade
 * NAT, and IPv6 unique-local and link-local. An operator widens this only on purpose.
 */
export const DEFAULT_ALLOWED_NETWORKS: readonly string[] = [
  '127.0.0.0/8',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
];

/** A set of CIDR ranges an address is checked against. */
export interface AllowedNetworks {
  /** The ranges as configured. */
  readonly cidrs: readonly string[];
  /** True when the IP address lies in one of the ranges. */
  allowsIp(ip: string): boolean;
  /**
   * True when the multiaddr's network address is allowed. DNS names are resolved and every
   * address they resolve to must be allowed; a multiaddr without a network part (a bare
   * `/p2p/…` or circuit suffix) is allowed, because the connection it rides on is gated itself.
   */
  allowsMultiaddr(ma: Multiaddr): Promise<boolean>;
}

function addCidr(list: BlockList, cidr: string): void {
  const slash = cidr.lastIndexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIP(address);
  const prefix = slash < 0 ? (family === 6 ? 128 : 32) : Number(cidr.slice(slash + 1));
  const max = family === 6 ? 128 : 32;
  if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
    throw new P2pConfigError(
      `allowed network '${cidr}': expected a CIDR such as 10.0.0.0/8 or fc00::/7 (prefix 0-${max})`,
    );
  }
  list.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4');
}

/** Strips an IPv4-mapped IPv6 prefix (`::ffff:10.0.0.1`) so the IPv4 ranges apply. */
function unmap(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

/** Parses CIDR ranges; throws P2pConfigError naming the bad one. */
export function allowedNetworks(cidrs: readonly string[]): AllowedNetworks {
  const list = new BlockList();
  for (const cidr of cidrs) addCidr(list, cidr);
  const allowsIp = (ip: string): boolean => {
    const plain = unmap(ip.replace(/%.*$/, ''));
    const family = isIP(plain);
    if (family === 0) return false;
    return list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  };
  return {
    cidrs: [...cidrs],
    allowsIp,
    async allowsMultiaddr(ma) {
      for (const c of ma.getComponents()) {
        if (c.name === 'ip4' || c.name === 'ip6') return c.value !== undefined && allowsIp(c.value);
        if (c.name === 'dns' || c.name === 'dns4' || c.name === 'dns6') {
          if (c.value === undefined) return false;
          const family = c.name === 'dns4' ? 4 : c.name === 'dns6' ? 6 : 0;
          try {
            const found = await lookup(c.value, { all: true, family });
            return found.length > 0 && found.every((a) => allowsIp(a.address));
          } catch {
            return false;
          }
        }
        if (c.name === 'dnsaddr') return false;
      }
      return true;
    },
  };
}
