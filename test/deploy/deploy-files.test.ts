// The systemd unit and the Kairos cloud-config ship to real machines; their agent command lines
// and settings must be exactly what `slotflow agent` accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { loadAgentConfig } from '../../node-agent/config.ts';

const root = new URL('../../', import.meta.url);

/** Splits a systemd ExecStart line into argv (double quotes group words, as systemd does). */
function execArgv(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}

function unitValue(unit: string, key: string): string {
  const line = unit.split('\n').find((l) => l.startsWith(`${key}=`));
  assert.ok(line, `the unit sets ${key}`);
  return line.slice(key.length + 1);
}

/** Parses an agent command line with the CLI's flags, then the configuration it implies. */
async function agentConfigOf(argv: string[], files: Record<string, string>, nodeId?: string) {
  assert.match(argv[0] ?? '', /\/slotflow$/);
  assert.equal(argv[1], 'agent');
  const { values } = parseArgs({
    args: argv.slice(2),
    strict: true,
    options: Object.fromEntries(
      [
        'node-id',
        'data-dir',
        'labels',
        'slot-driver',
        'reboot',
        'reboot-command',
        'config',
        'trusted-keys',
        'p2p-listen',
        'bootstrap',
      ].map((f) => [f, { type: 'string' as const }]),
    ),
  });
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-deploy-'));
  let config = values.config;
  if (config && files[config] !== undefined) {
    const local = join(dir, 'agent.json');
    await writeFile(local, files[config] as string);
    config = local;
  }
  return loadAgentConfig({
    flags: {
      config,
      nodeId: nodeId ?? values['node-id'],
      dataDir: values['data-dir'],
      labels: values.labels,
      slotDriver: values['slot-driver'],
      reboot: values.reboot,
      rebootCommand: values['reboot-command'],
      trustedKeys: values['trusted-keys'],
    },
    env: {},
    home: dir,
  });
}

test('deploy - the systemd unit runs a valid agent command with real reboots', async () => {
  const unit = await readFile(new URL('deploy/systemd/slotflow-agent.service', root), 'utf8');
  assert.match(unit, /^\[Unit\][\s\S]*^\[Service\][\s\S]*^\[Install\]/m);
  assert.equal(unitValue(unit, 'Restart'), 'always');
  const cloud = parseYaml(
    await readFile(new URL('deploy/kairos/cloud-config.yaml', root), 'utf8'),
  ) as CloudConfig;
  const agentJson = fileIn(cloud, '/etc/slotflow/agent.json');
  const config = await agentConfigOf(
    execArgv(unitValue(unit, 'ExecStart')),
    { '/etc/slotflow/agent.json': agentJson },
    'edge-1',
  );
  assert.equal(config.reboot, 'command');
  assert.deepEqual(config.rebootCommand, ['systemctl', 'reboot']);
  assert.equal(config.trustedKeysDir, '/etc/slotflow/trusted');
});

interface CloudConfig {
  stages: Record<
    string,
    { name: string; files?: { path: string; content: string }[]; commands?: string[] }[]
  >;
}

function fileIn(cloud: CloudConfig, path: string): string {
  for (const steps of Object.values(cloud.stages)) {
    for (const step of steps) {
      const file = step.files?.find((f) => f.path === path);
      if (file) return file.content;
    }
  }
  assert.fail(`the cloud-config writes ${path}`);
}

test('deploy - the Kairos cloud-config installs an agent with the kairos slot driver and enables it', async () => {
  const text = await readFile(new URL('deploy/kairos/cloud-config.yaml', root), 'utf8');
  assert.ok(text.startsWith('#cloud-config\n'), 'Kairos reads only files that start with #cloud-config');
  const cloud = parseYaml(text) as CloudConfig;
  const unit = fileIn(cloud, '/etc/systemd/system/slotflow-agent.service');
  const argv = execArgv(unitValue(unit, 'ExecStart')).map((a) => (a === '%H' ? 'kairos-node-1' : a));
  const config = await agentConfigOf(argv, {
    '/etc/slotflow/agent.json': fileIn(cloud, '/etc/slotflow/agent.json'),
  });
  assert.equal(config.slotDriver, 'kairos');
  assert.equal(config.nodeId, 'kairos-node-1');
  assert.deepEqual(config.labels, { site: 'factory-7', role: 'edge' });
  assert.equal(config.healthChecks[0]?.name, 'kubelet');
  assert.match(fileIn(cloud, '/etc/slotflow/agent.env'), /^NATS_URL=/m);
  const enable = Object.values(cloud.stages)
    .flat()
    .flatMap((s) => s.commands ?? []);
  assert.ok(enable.includes('systemctl enable --now slotflow-agent.service'));
});
