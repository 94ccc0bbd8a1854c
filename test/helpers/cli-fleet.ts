// A control plane and file-slot agents started only through the CLI, as an operator would:
// `stack up` on free ports, `keys init`, `slotflow worker` and `slotflow agent` processes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { ProcessGroup } from '../../demo/processes.ts';
import { pickFreePorts } from '../../stack/index.ts';
import { runCli } from './cli.ts';

/** What `stack status --json` says about a stack that is up. */
export interface CliStack {
  healthy: boolean;
  env: Record<string, string>;
  temporal: { pid: number };
  nats: { pid: number };
  registry?: { pid: number; address: string };
}

/**
 * `stack up` on free ports in `dataDir` (the registry too), checked healthy; the stack's env is
 * merged into `env` so later commands reach it.
 */
export async function cliStackUp(dataDir: string, env: Record<string, string>): Promise<CliStack> {
  const [temporalPort, uiPort, natsPort, registryPort] = await pickFreePorts(4);
  const ports = { temporal: temporalPort, ui: uiPort, nats: natsPort, registry: registryPort };
  const up = await runCli(
    [
      'stack',
      'up',
      '--data-dir',
      dataDir,
      ...Object.entries(ports).flatMap(([name, port]) => [`--${name}-port`, String(port)]),
      '--json',
    ],
    env,
    600_000,
  );
  assert.equal(up.code, 0, up.stderr);
  const status = await runCli(['stack', 'status', '--data-dir', dataDir, '--json'], env);
  assert.equal(status.code, 0, status.stderr);
  const stack = JSON.parse(status.stdout) as CliStack;
  assert.equal(stack.healthy, true);
  Object.assign(env, stack.env);
  return stack;
}

/** Starts `keys init`, a worker and one file-slot agent per node (extra args by node), then waits until all registered. */
export async function cliFleetUp(
  home: string,
  env: Record<string, string>,
  group: ProcessGroup,
  nodes: { nodeId: string; labels: string; extra?: string[] }[],
): Promise<void> {
  assert.equal((await runCli(['keys', 'init'], env)).code, 0);
  group.start('worker', ['worker'], env, join(home, 'worker.log'));
  for (const { nodeId, labels, extra = [] } of nodes) {
    const args = [
      'agent',
      '--node-id',
      nodeId,
      '--data-dir',
      join(home, 'agents', nodeId),
      '--labels',
      labels,
    ];
    args.push('--slot-driver', 'file', '--reboot', 'simulate', '--trusted-keys', join(home, 'keys'));
    args.push('--initial-version', '1.0.0', ...extra);
    group.start(nodeId, args, env, join(home, `${nodeId}.log`));
  }
  for (let i = 0; ; i++) {
    const fleet = JSON.parse((await runCli(['fleet', '--json'], env)).stdout || '{"nodes":[]}') as {
      nodes: { nodeId: string }[];
    };
    if (fleet.nodes.length === nodes.length) break;
    assert.ok(i < 120, `${nodes.length} agents registered`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
