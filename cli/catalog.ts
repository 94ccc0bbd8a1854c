import type { Command } from './command.ts';

/** One CLI command as `slotflow --help` lists it; its module is loaded only when it runs. */
export interface CatalogEntry {
  readonly path: readonly string[];
  readonly summary: string;
  load(): Promise<Command>;
}

// Command modules pull in the Temporal, NATS and libp2p clients; loading only the one that runs
// keeps `--help`, bad usage and quick commands fast.
const entry = (path: string, summary: string, load: () => Promise<Command>): CatalogEntry => ({
  path: path.split(' '),
  summary,
  load,
});
const rollout = () => import('./commands/rollout.ts');
const stack = () => import('./commands/stack.ts');
const node = () => import('./commands/node.ts');

/** Every command, in the order `slotflow --help` lists them. */
export const CATALOG: readonly CatalogEntry[] = [
  entry(
    'stack up',
    'start a local Temporal dev server and JetStream nats-server (provisions them first)',
    async () => (await stack()).stackUpCommand,
  ),
  entry(
    'stack status',
    'check the local stack (Temporal, its Web UI, NATS JetStream); exit 1 if anything is unhealthy',
    async () => (await stack()).stackStatusCommand,
  ),
  entry(
    'stack down',
    'stop the servers `stack up` started (data is kept)',
    async () => (await stack()).stackDownCommand,
  ),
  entry(
    'stack nats-auth',
    "make the secured NATS's operator, certificates and credentials (worker, CLI, nodes) without starting it",
    async () => (await import('./commands/nats-auth.ts')).stackNatsAuthCommand,
  ),
  entry(
    'provision',
    'locate or build the Temporal CLI and nats-server the local stack runs',
    async () => (await import('./commands/provision.ts')).provisionCommand,
  ),
  entry(
    'worker',
    'run the Temporal worker (workflows, activities), the event bridge and the projector',
    async () => (await import('./commands/worker.ts')).worker,
  ),
  entry(
    'lab rootfs',
    'lay out a bootable VM-lab slot rootfs (kernel, initramfs, init, optionally the agent) for image build',
    async () => (await import('./commands/lab.ts')).labRootfs,
  ),
  entry(
    'agent',
    'run the node agent: verified A/B slot upgrades, trial boots, health checks, fallback',
    async () => (await import('./commands/agent.ts')).agent,
  ),
  entry(
    'keys init',
    "create the control plane's signing key pair under SLOTFLOW_HOME",
    async () => (await import('./commands/keys.ts')).keysInit,
  ),
  entry(
    'keys mesh-init',
    "create the fleet's mesh pre-shared key (peers without it cannot join the libp2p mesh)",
    async () => (await import('./commands/keys-mesh.ts')).keysMeshInit,
  ),
  entry(
    'keys rotate',
    'create a new control-plane key, announce it to every agent, switch to it after an overlap',
    async () => (await import('./commands/keys.ts')).keysRotate,
  ),
  entry(
    'keys revoke',
    'retire a control-plane key and tell every agent to refuse it',
    async () => (await import('./commands/keys.ts')).keysRevoke,
  ),
  entry(
    'keys list',
    "list the control plane's keys: which one signs now, which next, which are revoked",
    async () => (await import('./commands/keys.ts')).keysList,
  ),
  entry(
    'keys rauc-init',
    'create a self-signed key and certificate to sign RAUC bundles in trials',
    async () => (await import('./commands/keys.ts')).keysRaucInit,
  ),
  entry(
    'node preauthorize',
    'enrol a node before its first start: its key in its data dir, the certificate in enrolment.json',
    async () => (await node()).nodePreauthorize,
  ),
  entry(
    'node enroll',
    'enrol a public key made on the node and print its certificate',
    async () => (await node()).nodeEnroll,
  ),
  entry(
    'node pending',
    'list nodes that asked to be enrolled (--all: every known node and its status)',
    async () => (await node()).nodePending,
  ),
  entry('node accept', "accept a pending node's enrolment request", async () => (await node()).nodeAccept),
  entry('node reject', "refuse a pending node's enrolment request", async () => (await node()).nodeReject),
  entry(
    'node revoke',
    'revoke an enrolled node: its events are refused from now on',
    async () => (await node()).nodeRevoke,
  ),
  entry(
    'image build',
    'build a slot image from a rootfs or Containerfile and publish it to the object store',
    async () => (await import('./commands/image.ts')).imageBuild,
  ),
  entry(
    'rollout start',
    'start a staged rollout (canary, waves, health gates) of an image to the fleet',
    async () => (await rollout()).rolloutStart,
  ),
  entry('rollout list', 'list rollouts, newest first', async () => (await rollout()).rolloutList),
  entry(
    'rollout status',
    "show a rollout's waves and per-node progress",
    async () => (await rollout()).rolloutStatusCommand,
  ),
  entry(
    'rollout watch',
    'follow a rollout live until it ends or needs an operator (exit 0 succeeded, 1 failed, 3 waits for an operator)',
    async () => (await rollout()).rolloutWatch,
  ),
  entry(
    'rollout pause',
    'pause a rollout: running nodes finish, no new node starts',
    async () => (await rollout()).rolloutControls.pause,
  ),
  entry('rollout resume', 'resume a paused rollout', async () => (await rollout()).rolloutControls.resume),
  entry(
    'rollout abort',
    'end a rollout where it stands (upgraded nodes stay upgraded)',
    async () => (await rollout()).rolloutControls.abort,
  ),
  entry(
    'rollout approve',
    'approve the next wave of a rollout waiting for approval',
    async () => (await rollout()).rolloutControls.approve,
  ),
  entry(
    'rollout rollback',
    'roll back every node the rollout touched, newest first',
    async () => (await rollout()).rolloutControls.rollback,
  ),
  entry(
    'fleet',
    'show every node: version, active slot, state and last rollout',
    async () => (await import('./commands/fleet.ts')).fleet,
  ),
  entry(
    'events',
    'print domain events from the event log (--follow keeps printing new ones)',
    async () => (await import('./commands/events.ts')).events,
  ),
  entry(
    'demo',
    'run a worker and N agents (or, with --vm, N QEMU VMs) on the local stack and roll out a freshly built image',
    async () => (await import('./commands/demo.ts')).demo,
  ),
];
