import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConnectionConfig } from '../../runtime/config.ts';
import { execaRunner, type Runner } from '../../runtime/runner.ts';
import { AgentConfig } from '../../schema/index.ts';
import { startAgent } from '../../node-agent/agent.ts';
import { AgentConfigError, loadAgentConfig } from '../../node-agent/config.ts';
import { RebootError } from '../../node-agent/errors.ts';
import { checkBootedExpected, runHealthChecks } from '../../node-agent/health/health-checks.ts';
import { renderMetrics } from '../../node-agent/metrics.ts';
import { createCommandReboot } from '../../node-agent/reboot/command.ts';
import type { SlotStatus } from '../../node-agent/slot-drivers/index.ts';
import { scratchDir } from './scratch.ts';

const onB: SlotStatus = {
  booted: 'b',
  primary: 'a',
  trial: true,
  slots: { a: { version: '1.0.0' }, b: { version: '2.0.0' } },
};

test('health checks - the built-in check wants the expected slot and version', () => {
  assert.deepEqual(checkBootedExpected(onB, { slot: 'b', version: '2.0.0' }, '0'), {
    ok: true,
    checks: ['booted-expected-slot'],
  });
  assert.match(
    (checkBootedExpected({ ...onB, booted: 'a' }, { slot: 'b', version: '2.0.0' }, '0') as { reason: string })
      .reason,
    /booted slot a, expected the trial slot b/,
  );
  assert.match(
    (checkBootedExpected(onB, { slot: 'b', version: '2.1.0' }, '0') as { reason: string }).reason,
    /runs version 2.0.0, expected 2.1.0/,
  );
});

test('health checks - configured commands run in order with their time limit; the first failure stops', async () => {
  const checks = [
    {
      name: 'env',
      command: ['sh', '-c', 'test "$SLOTFLOW_SLOT" = b && test "$SLOTFLOW_VERSION" = 2.0.0'],
      timeout: 5_000,
    },
    { name: 'slow', command: ['sleep', '5'], timeout: 300 },
    { name: 'never', command: ['false'], timeout: 5_000 },
  ];
  const result = await runHealthChecks({
    runner: execaRunner,
    checks,
    status: onB,
    expected: { slot: 'b', version: '2.0.0' },
    initialVersion: '0',
  });
  assert.deepEqual(result, { ok: false, check: 'slow', reason: 'sleep did not finish within 300 ms' });
  const ok = await runHealthChecks({
    runner: execaRunner,
    checks: checks.slice(0, 1),
    status: onB,
    expected: { slot: 'b', version: '2.0.0' },
    initialVersion: '0',
  });
  assert.deepEqual(ok, { ok: true, checks: ['booted-expected-slot', 'env'] });
});

test('command reboot - runs the command; a failing command or a machine still up afterwards is a RebootError', async () => {
  const calls: string[][] = [];
  const runner = (ok: boolean): Runner => ({
    async run(file, args) {
      calls.push([file, ...args]);
      return ok
        ? { ok, stdout: '', stderr: '' }
        : { ok, stdout: '', stderr: '', failure: 'systemctl exited with code 1: access denied' };
    },
  });
  await assert.rejects(
    createCommandReboot({ runner: runner(false), argv: ['systemctl', 'reboot'], timeoutMs: 10 }).reboot(),
    (err: Error) => err instanceof RebootError && /access denied/.test(err.message),
  );
  await assert.rejects(
    createCommandReboot({ runner: runner(true), argv: ['systemctl', 'reboot'], timeoutMs: 10 }).reboot(),
    (err: Error) => err instanceof RebootError && /still runs/.test(err.message),
  );
  assert.deepEqual(calls, [
    ['systemctl', 'reboot'],
    ['systemctl', 'reboot'],
  ]);
});

test('metrics - the Prometheus text names the state, bytes written and last result', () => {
  const text = renderMetrics({
    nodeId: 'n-1',
    state: 'writing',
    version: '1.0.0',
    slot: 'a',
    bytesWritten: 4096,
    outbox: 2,
    commands: { accepted: 3, rejected: 1 },
    lastResult: { result: 'fell-back', at: '2026-11-22T10:00:00.000Z' },
  });
  assert.match(text, /^slotflow_agent_state\{state="writing"\} 1$/m);
  assert.match(text, /^slotflow_agent_state\{state="idle"\} 0$/m);
  assert.match(text, /^slotflow_agent_bytes_written_total 4096$/m);
  assert.match(text, /^slotflow_agent_last_result\{result="fell-back"\} 1$/m);
  assert.match(text, /^slotflow_agent_commands_total\{outcome="rejected"\} 1$/m);
  assert.match(text, /^# TYPE slotflow_agent_bytes_written_total counter$/m);
});

test('agent config - flags win over the environment, which wins over the file', async () => {
  const dir = await scratchDir('slotflow-agent-config-');
  const file = join(dir, 'agent.yaml');
  await writeFile(
    file,
    'nodeId: from-file\ndataDir: /var/lib/slotflow\nlabels: site=file\nheartbeatInterval: 30s\np2p:\n  mdns: true\n',
  );
  const config = await loadAgentConfig({
    flags: {
      config: file,
      labels: 'site=flag,role=edge',
      healthCheck: ['api=curl -fsS http://127.0.0.1/healthz'],
      artifactDir: ['/media/usb'],
      bootstrap: 'a:1,b:2',
    },
    env: { SLOTFLOW_NODE_ID: 'from-env', SLOTFLOW_LABELS: 'site=env' },
    home: '/home/op/.slotflow',
  });
  assert.equal(config.nodeId, 'from-env');
  assert.equal(config.dataDir, '/var/lib/slotflow');
  assert.deepEqual(config.labels, { site: 'flag', role: 'edge' });
  assert.equal(config.heartbeatInterval, 30_000);
  assert.deepEqual(config.healthChecks, [
    { name: 'api', command: ['curl', '-fsS', 'http://127.0.0.1/healthz'], timeout: 30_000 },
  ]);
  assert.deepEqual(config.artifactSources, [
    { type: 'nats', bucket: 'slotflow-images' },
    { type: 'dir', path: '/media/usb' },
  ]);
  assert.deepEqual(config.p2p.bootstrap, ['a:1', 'b:2']);
  assert.equal(config.p2p.mdns, true);
  assert.equal(config.trustedKeysDir, '/home/op/.slotflow/keys');
});

test('agent config - the mesh key defaults to the one beside the control plane keys; flag and environment override it; an open mesh has none', async () => {
  const base = { nodeId: 'n', dataDir: '/d' };
  const load = (flags: object, env: NodeJS.ProcessEnv = {}) =>
    loadAgentConfig({ flags: { ...base, ...flags }, env, home: '/home/op/.slotflow' });
  assert.equal((await load({})).p2p.meshKey, '/home/op/.slotflow/keys/mesh.psk');
  assert.equal(
    (await load({}, { SLOTFLOW_MESH_KEY: '/etc/slotflow/mesh.psk' })).p2p.meshKey,
    '/etc/slotflow/mesh.psk',
  );
  assert.equal(
    (await load({ meshKey: '/run/mesh.psk' }, { SLOTFLOW_MESH_KEY: '/etc/slotflow/mesh.psk' })).p2p.meshKey,
    '/run/mesh.psk',
  );
  const dir = await scratchDir('slotflow-agent-config-');
  const file = join(dir, 'agent.yaml');
  await writeFile(file, 'p2p:\n  openMesh: true\n');
  const open = await load({ config: file });
  assert.equal(open.p2p.openMesh, true);
  assert.equal(open.p2p.meshKey, undefined);
});

test('agent config - a missing node id or a bad value names the field and how to give it', async () => {
  await assert.rejects(
    loadAgentConfig({ flags: { dataDir: '/x' }, env: {}, home: '/h' }),
    /nodeId: .*--node-id/,
  );
  await assert.rejects(
    loadAgentConfig({ flags: { nodeId: 'n', dataDir: '/x', slotDriver: 'floppy' }, env: {}, home: '/h' }),
    /slotDriver/,
  );
  await assert.rejects(
    loadAgentConfig({
      flags: { nodeId: 'n', dataDir: '/x', healthCheck: ['nocommand'] },
      env: {},
      home: '/h',
    }),
    /--health-check: expected name=command/,
  );
});

const pair = (slotDriver: string, reboot: string, env: NodeJS.ProcessEnv = {}) =>
  loadAgentConfig({ flags: { nodeId: 'n', dataDir: '/var/lib/n', slotDriver, reboot }, env, home: '/h' });

test('agent config - refuses driver pairs that cannot work, saying what was configured, why and what to change', async () => {
  await assert.rejects(
    pair('file', 'command'),
    (err: Error) =>
      err instanceof AgentConfigError &&
      /^slotDriver 'file' with reboot 'command' cannot work: /.test(err.message) &&
      /\/var\/lib\/n\/slots/.test(err.message) &&
      /'systemctl reboot'/.test(err.message) &&
      /Use --reboot simulate for a simulated node/.test(err.message) &&
      /--slot-driver grub, rauc or kairos/.test(err.message),
  );
  for (const slotDriver of ['grub', 'rauc', 'kairos']) {
    await assert.rejects(
      pair(slotDriver, 'simulate'),
      (err: Error) =>
        err instanceof AgentConfigError &&
        err.message.startsWith(
          `slotDriver '${slotDriver}' with reboot 'simulate' cannot work outside the lab`,
        ) &&
        /the armed trial slot never boots/.test(err.message) &&
        /Use --reboot command/.test(err.message) &&
        /SLOTFLOW_LAB=1/.test(err.message),
    );
  }
  await assert.rejects(
    pair('grub', 'simulate'),
    /GRUB never reads the environment block \/boot\/efi\/grubenv/,
  );
});

test('agent config - workable pairs start; a lab machine (SLOTFLOW_LAB=1) may use any pair', async () => {
  assert.equal((await pair('file', 'simulate')).slotDriver, 'file');
  for (const slotDriver of ['grub', 'rauc', 'kairos'])
    assert.equal((await pair(slotDriver, 'command')).reboot, 'command');
  const lab = await pair('grub', 'simulate', { SLOTFLOW_LAB: '1' });
  assert.equal(lab.lab, true);
  assert.equal((await pair('file', 'command', { SLOTFLOW_LAB: '1' })).lab, true);
  await assert.rejects(pair('grub', 'simulate', { SLOTFLOW_LAB: '0' }), AgentConfigError);
  await assert.rejects(
    pair('grub', 'simulate', { SLOTFLOW_LAB: 'yes' }),
    /SLOTFLOW_LAB: expected 1 .* got "yes"/,
  );
});

test('agent config - the grub driver defaults to the root-a/root-b partitions and the ESP grubenv; one device for both slots is refused', async () => {
  const config = await pair('grub', 'command');
  assert.deepEqual(config.grub, {
    slots: { a: '/dev/disk/by-partlabel/root-a', b: '/dev/disk/by-partlabel/root-b' },
    envFile: '/boot/efi/grubenv',
    grubEditenv: 'grub-editenv',
    cmdline: '/proc/cmdline',
  });
  const dir = await scratchDir('slotflow-agent-config-');
  const file = join(dir, 'agent.yaml');
  await writeFile(file, 'slotDriver: grub\ngrub:\n  slots:\n    a: /dev/vda2\n    b: /dev/vda2\n');
  await assert.rejects(
    loadAgentConfig({
      flags: { config: file, nodeId: 'n', dataDir: '/x', reboot: 'command' },
      env: {},
      home: '/h',
    }),
    /grub\.slots: expected two different devices/,
  );
  await writeFile(file, 'slotDriver: grub\ngrub:\n  envFile: grubenv\n');
  await assert.rejects(
    loadAgentConfig({
      flags: { config: file, nodeId: 'n', dataDir: '/x', reboot: 'command' },
      env: {},
      home: '/h',
    }),
    /grub\.envFile: expected an absolute path/,
  );
});

test('agent start - refuses a driver pair that cannot work before touching the data directory', async () => {
  const dataDir = join(await scratchDir('slotflow-agent-pair-'), 'data');
  const config = AgentConfig.parse({ nodeId: 'n', dataDir, slotDriver: 'file', reboot: 'command' });
  const outcome = await startAgent({
    config,
    connection: loadConnectionConfig({}),
    bootId: 'boot-1',
    log: pino({ level: 'silent' }),
  }).then(
    async (agent) => void (await agent.stop()), // started: stop it, so the failure below ends the test
    (err: unknown) => err,
  );
  assert.ok(
    outcome instanceof AgentConfigError && /Use --reboot simulate/.test(outcome.message),
    `expected a refusal naming the fix, got ${String(outcome)}`,
  );
  await assert.rejects(readdir(dataDir), /ENOENT/);
});
