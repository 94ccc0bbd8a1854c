// The slotflow CLI contract from DESIGN.md for the commands a container runs (`worker`,
// `agent …`, `keys init`), as data, and a strict argv checker built on it. The checker parses
// argv the way the CLI does (node:util parseArgs, strict) and then validates every value.
import { parseArgs } from 'node:util';
import { NodeId } from '../../schema/ids.ts';
import { parseLabels } from '../../schema/labels.ts';

/** Returns a problem description, or undefined when the value is acceptable. */
type Check = (value: string) => string | undefined;

interface FlagSpec {
  readonly required?: boolean;
  readonly check: Check;
}

interface CommandSpec {
  readonly path: readonly string[];
  readonly flags: Readonly<Record<string, FlagSpec>>;
}

/** A parsed and validated slotflow invocation. */
export interface SlotflowInvocation {
  /** The command path joined by spaces, e.g. `keys init`. */
  readonly command: string;
  readonly flags: Readonly<Record<string, string>>;
}

const oneOf =
  (...allowed: string[]): Check =>
  (value) =>
    allowed.includes(value) ? undefined : `expected one of ${allowed.join('|')}, got '${value}'`;

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const HOSTNAME =
  /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{40,60}$/; // base58btc (Qm…/12D3Koo…)

/** The parts of a multiaddr this checker understands: an address, a TCP port and a peer id. */
export interface Multiaddr {
  readonly proto: 'ip4' | 'ip6' | 'dns' | 'dns4' | 'dns6';
  readonly host: string;
  readonly port: number;
  readonly peerId?: string;
}

/** Parses `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>[/p2p/<peer id>]`, or returns a problem. */
export function parseMultiaddr(text: string): Multiaddr | string {
  const parts = text.split('/');
  if (parts[0] !== '' || parts.length < 5) return `'${text}' is not a multiaddr like /dns4/host/tcp/4001`;
  const [, proto = '', host = '', transport, portText = '', ...rest] = parts;
  if (proto !== 'ip4' && proto !== 'ip6' && proto !== 'dns' && proto !== 'dns4' && proto !== 'dns6') {
    return `'${text}': unsupported address protocol '/${proto}'`;
  }
  if (proto === 'ip4' && !IPV4.test(host)) return `'${text}': '${host}' is not an IPv4 address`;
  if (proto === 'ip6' && !host.includes(':')) return `'${text}': '${host}' is not an IPv6 address`;
  if (proto.startsWith('dns') && !HOSTNAME.test(host)) return `'${text}': '${host}' is not a host name`;
  if (transport !== 'tcp') return `'${text}': expected /tcp/<port> after the address`;
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) return `'${text}': '${portText}' is not a port`;
  if (rest.length === 0) return { proto, host, port };
  if (rest.length === 2 && rest[0] === 'p2p' && PEER_ID.test(rest[1] ?? '')) {
    return { proto, host, port, peerId: rest[1] };
  }
  return `'${text}': unexpected '/${rest.join('/')}' (only /p2p/<peer id> may follow the port)`;
}

const multiaddr: Check = (value) => {
  const parsed = parseMultiaddr(value);
  return typeof parsed === 'string' ? parsed : undefined;
};

const multiaddrList: Check = (value) => {
  const problems = value.split(',').map((a) => multiaddr(a.trim()));
  return problems.find((p) => p !== undefined);
};

const absolutePath: Check = (value) =>
  value.startsWith('/') ? undefined : `expected an absolute path in the container, got '${value}'`;

const nodeId: Check = (value) => {
  const r = NodeId.safeParse(value);
  return r.success ? undefined : (r.error.issues[0]?.message ?? 'invalid node id');
};

const labels: Check = (value) => {
  const parsed = parseLabels(value);
  return typeof parsed === 'string' ? parsed : undefined;
};

const nodeIdList: Check = (value) =>
  value
    .split(',')
    .map(nodeId)
    .find((p) => p !== undefined);

/**
 * `slotflow worker`, `slotflow agent …`, `slotflow keys init` and `slotflow node preauthorize`, as
 * DESIGN.md defines them, and `slotflow stack nats-auth` (the secured NATS's operator,
 * certificates and creds).
 */
export const CONTAINER_COMMANDS: readonly CommandSpec[] = [
  { path: ['worker'], flags: {} },
  {
    path: ['stack', 'nats-auth'],
    flags: {
      'auth-dir': { required: true, check: absolutePath },
      nodes: { check: nodeIdList },
      export: { check: absolutePath },
    },
  },
  { path: ['keys', 'init'], flags: { 'export-public': { check: absolutePath } } },
  {
    path: ['node', 'preauthorize'],
    flags: {
      'node-id': { required: true, check: nodeId },
      'data-dir': { required: true, check: absolutePath },
    },
  },
  {
    path: ['agent'],
    flags: {
      'node-id': { required: true, check: nodeId },
      'data-dir': { required: true, check: absolutePath },
      labels: { check: labels },
      'slot-driver': { check: oneOf('file', 'grub', 'kairos', 'rauc') },
      reboot: { check: oneOf('simulate', 'command') },
      'p2p-listen': { check: multiaddr },
      bootstrap: { check: multiaddrList },
      'trusted-keys': { check: absolutePath },
      'mesh-key': { check: absolutePath },
    },
  },
];

/** Parses argv (without the `slotflow` program name) against the contract; throws on a violation. */
export function parseInvocation(argv: readonly string[]): SlotflowInvocation {
  const spec = CONTAINER_COMMANDS.filter((c) => c.path.every((p, i) => argv[i] === p)).sort(
    (a, b) => b.path.length - a.path.length,
  )[0];
  if (!spec) {
    const known = CONTAINER_COMMANDS.map((c) => c.path.join(' ')).join(', ');
    throw new Error(`'${argv.join(' ')}' is not one of the slotflow commands ${known}`);
  }
  const command = spec.path.join(' ');
  const options = Object.fromEntries(Object.keys(spec.flags).map((f) => [f, { type: 'string' as const }]));
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: argv.slice(spec.path.length),
      options,
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new Error(`slotflow ${command}: ${(err as Error).message}`, { cause: err });
  }
  const flags: Record<string, string> = {};
  for (const [name, flag] of Object.entries(spec.flags)) {
    const value = values[name];
    if (typeof value !== 'string') {
      if (flag.required) throw new Error(`slotflow ${command}: --${name} is required`);
      continue;
    }
    const problem = flag.check(value);
    if (problem) throw new Error(`slotflow ${command} --${name}: ${problem}`);
    flags[name] = value;
  }
  return { command, flags };
}
