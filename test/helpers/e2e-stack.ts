// The control plane of an end-to-end test, brought up as an operator would: `slotflow stack up`
// on free ports (the OCI registry too), `keys init`, a worker; then the wait until the agents have registered.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProcessGroup } from '../../demo/processes.ts';
import { issueNodeCredentials, pickFreePorts } from '../../stack/index.ts';
import { runCli } from './cli.ts';

/** What `slotflow stack status --json` reports. */
export interface E2eStack {
  healthy: boolean;
  env: Record<string, string>;
  temporal: { pid: number };
  nats: { pid: number; security?: { authDir: string; workerCreds: string } };
  registry?: { pid: number; address: string };
}

/**
 * A node's environment: the stack's, with NATS credentials issued for that node only (the
 * stack's NATS is secured), as an operator provisions a machine.
 */
export async function nodeEnv(
  stack: E2eStack,
  env: Record<string, string>,
  nodeId: string,
): Promise<Record<string, string>> {
  const security = stack.nats.security;
  assert.ok(security, 'stack up secures NATS by default');
  return { ...env, NATS_CREDS: await issueNodeCredentials(security.authDir, nodeId) };
}

/**
 * Starts the stack under `stackDir`, adds its connection settings to `env`, creates the control
 * plane's keys under SLOTFLOW_HOME and starts a worker in `group` (its log in `logDir`).
 */
export async function startE2eControlPlane(
  stackDir: string,
  env: Record<string, string>,
  group: ProcessGroup,
  logDir: string,
): Promise<E2eStack> {
  const [temporalPort, uiPort, natsPort, registryPort] = await pickFreePorts(4);
  const up = await runCli(
    [
      ...['stack', 'up', '--data-dir', stackDir, '--temporal-port', String(temporalPort)],
      ...['--ui-port', String(uiPort), '--nats-port', String(natsPort)],
      ...['--registry-port', String(registryPort), '--json'],
    ],
    env,
    600_000,
  );
  assert.equal(up.code, 0, up.stderr);
  const status = await runCli(['stack', 'status', '--data-dir', stackDir, '--json'], env);
  assert.equal(status.code, 0, status.stderr);
  const stack = JSON.parse(status.stdout) as E2eStack;
  assert.equal(stack.healthy, true);
  Object.assign(env, stack.env);
  assert.equal((await runCli(['keys', 'init'], env)).code, 0);
  const workerCreds = stack.nats.security?.workerCreds;
  assert.ok(workerCreds, 'stack up issues the worker its own NATS credentials');
  group.start('worker', ['worker'], { ...env, NATS_CREDS: workerCreds }, join(logDir, 'worker.log'));
  return stack;
}

/** Waits until `slotflow fleet` lists `count` nodes (about a minute at most). */
export async function waitForFleet(env: Record<string, string>, count: number): Promise<void> {
  for (let i = 0; ; i++) {
    const fleet = JSON.parse((await runCli(['fleet', '--json'], env)).stdout || '{"nodes":[]}') as {
      nodes: unknown[];
    };
    if (fleet.nodes.length === count) return;
    assert.ok(i < 120, `${count} agents registered (${fleet.nodes.length} so far)`);
    await sleep(500);
  }
}

/** Pre-authorises an agent through the CLI (`slotflow node preauthorize`) before it first starts. */
export async function preauthorizeAgent(
  env: Record<string, string>,
  nodeId: string,
  dataDir: string,
): Promise<{ natsCreds?: string }> {
  const r = await runCli(['node', 'preauthorize', '--node-id', nodeId, '--data-dir', dataDir, '--json'], env);
  assert.equal(r.code, 0, `node preauthorize ${nodeId}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { natsCreds?: string };
}
