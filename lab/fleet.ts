import { join } from 'node:path';
import { agentBundle } from './agent-bundle.ts';
import { bootsIn } from './console.ts';
import { buildLabDisk, cloneDisk, type LabDisk } from './lab-disk.ts';
import { startVm, type LabVm } from './qemu.ts';

/**
 * The OS version a fleet's VMs start on (the slots' /etc/os-release): a release version, so a
 * rollout of a later one upgrades them.
 */
export const FLEET_BASE_VERSION = '1.0.0';

/** One VM of a lab fleet: its agent's node id and extra lab.env settings. */
export interface LabFleetNode {
  readonly nodeId: string;
  /** Extra `KEY=value` lines for /data/lab/lab.env (LAB_LABELS, LAB_AGENT_ARGS, …). */
  readonly env?: Readonly<Record<string, string>>;
  /** The node's NATS creds file and the CA (contents), when the host's nats-server is secured. */
  readonly nats?: { readonly creds: string; readonly ca: string };
}

/** Where a guest finds its NATS creds and CA on /data. */
const GUEST_NATS = { creds: 'lab/nats/node.creds', ca: 'lab/nats/ca.pem' } as const;

/** What startLabFleet needs. */
export interface LabFleetOptions {
  /** Work directory: one disk image and one VM folder (console.log) per node. */
  readonly dir: string;
  /** The host's nats-server port; every guest reaches it as nats://10.0.2.100:4222. */
  readonly natsPort: number;
  /** The control plane's public key (PEM), trusted by every agent. */
  readonly trustedKeyPem: string;
  readonly nodes: readonly LabFleetNode[];
  /** A lab disk to clone (default: buildLabDisk with the agent bundle, at FLEET_BASE_VERSION). */
  readonly disk?: LabDisk;
}

/** Lab VMs running slotflow agents. */
export interface LabFleet {
  readonly disk: LabDisk;
  /** The VMs, in the order of the nodes. */
  readonly vms: readonly LabVm[];
  /** Each VM's disk image (for readDiskGrubenv after the VM stopped). */
  readonly images: readonly string[];
  /** The slots each VM booted so far, from its console. */
  boots(index: number): Promise<string[]>;
  /** Powers every VM off; idempotent, safe on every path. */
  stop(): Promise<void>;
}

/** The lab.env of an agent VM. */
export function agentLabEnv(node: LabFleetNode): string {
  const lines = {
    LAB_SERVICE: 'agent',
    SLOTFLOW_NODE_ID: node.nodeId,
    NATS_URL: node.nats ? 'tls://10.0.2.100:4222' : 'nats://10.0.2.100:4222',
    ...(node.nats ? { NATS_CREDS: `/data/${GUEST_NATS.creds}`, NATS_TLS_CA: `/data/${GUEST_NATS.ca}` } : {}),
    ...node.env,
  };
  return Object.entries(lines)
    .map(([k, v]) => `${k}='${v.replaceAll("'", `'\\''`)}'\n`)
    .join('');
}

/**
 * Builds (or takes from the cache) the agent lab disk, clones it once per node with that node's
 * lab.env and the trusted key, and powers the VMs on with NATS forwarded. A VM that fails to
 * start powers off the ones already running before the error propagates.
 */
export async function startLabFleet(o: LabFleetOptions): Promise<LabFleet> {
  const disk = o.disk ?? (await buildLabDisk({ version: FLEET_BASE_VERSION, agent: await agentBundle() }));
  const vms: LabVm[] = [];
  const images: string[] = [];
  const stop = async () => {
    await Promise.all(vms.map((vm) => vm.stop()));
  };
  try {
    for (const node of o.nodes) {
      const image = join(o.dir, `${node.nodeId}.img`);
      await cloneDisk(disk, image, {
        'lab/lab.env': agentLabEnv(node),
        'lab/keys/control-plane.pub': o.trustedKeyPem,
        ...(node.nats ? { [GUEST_NATS.creds]: node.nats.creds, [GUEST_NATS.ca]: node.nats.ca } : {}),
      });
      images.push(image);
      vms.push(
        await startVm({
          name: node.nodeId,
          disk: image,
          dir: join(o.dir, node.nodeId),
          guestForwards: [{ guestPort: 4222, hostPort: o.natsPort }],
        }),
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    disk,
    vms,
    images,
    async boots(index) {
      return bootsIn(await vms[index]!.console()).map((b) => b.slot);
    },
    stop,
  };
}
