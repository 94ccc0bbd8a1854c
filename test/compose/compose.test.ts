// Checks docker-compose.yml without a Docker engine: the stack's shape, pinned images, ports,
// start order, volumes, the slotflow commands against the CLI contract, the addresses the
// processes are given, and every file the compose file and the Dockerfile rely on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadCompose, type Mount, type Service } from './compose-model.ts';
import { parseInvocation, parseMultiaddr, type SlotflowInvocation } from './cli-contract.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
const compose = loadCompose(COMPOSE_FILE);

const AGENTS = ['agent-1', 'agent-2', 'agent-3'];
/** The one-shot service that enrols each agent's node before the agent starts. */
const ENROLS: Record<string, string> = {
  'agent-1': 'enrol-node-1',
  'agent-2': 'enrol-node-2',
  'agent-3': 'enrol-node-3',
};
const EXPECTED_SERVICES = [
  'postgresql',
  'temporal',
  'temporal-search-attributes',
  'temporal-ui',
  'registry',
  'nats-auth',
  'nats',
  'keys',
  'worker',
  ...Object.values(ENROLS),
  ...AGENTS,
];
const CONDITIONS = new Set(['service_started', 'service_healthy', 'service_completed_successfully']);
/** The custom search attributes DESIGN.md names, with their Temporal types. */
const SEARCH_ATTRIBUTES = { RolloutId: 'Keyword', NodeId: 'Keyword', ImageDigest: 'Keyword', Wave: 'Int' };

function svc(name: string): Service {
  const s = compose.services.get(name);
  assert.ok(s, `docker-compose.yml has no service '${name}'`);
  return s;
}

/** Services that run the slotflow image (built from this repo). */
const slotflowServices = [...compose.services.values()].filter((s) => s.build !== undefined);

function invocation(s: Service): SlotflowInvocation {
  assert.ok(
    Array.isArray(s.command),
    `${s.name}: command must be an exec-form list so no shell re-splits it`,
  );
  return parseInvocation(s.command as string[]);
}

/** The mount that holds the given container path (the longest matching target). */
function mountAt(s: Service, path: string): Mount | undefined {
  return s.volumes
    .filter((m) => path === m.target || path.startsWith(`${m.target.replace(/\/$/, '')}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
}

/** Resolves a file inside a container to the repo file bind-mounted there, if any. */
function repoFileAt(s: Service, containerPath: string): string | undefined {
  const m = mountAt(s, containerPath);
  if (!m || m.type !== 'bind' || !m.source) return undefined;
  return resolve(ROOT, m.source, posix.relative(m.target, containerPath));
}

test('compose - declares every service of the stack and no obsolete version key', () => {
  const missing = EXPECTED_SERVICES.filter((name) => !compose.services.has(name));
  assert.deepEqual(missing, [], 'services missing from docker-compose.yml');
  assert.ok(!('version' in compose.raw), "the compose spec has no 'version:' key; remove it");
});

test('compose - pins every image to a tag other than latest', () => {
  const problems: string[] = [];
  for (const s of compose.services.values()) {
    if (!s.image) {
      problems.push(`${s.name}: no image name (a built service needs one so all slotflow services share it)`);
      continue;
    }
    if (s.image.includes('$')) problems.push(`${s.name}: '${s.image}' is interpolated; pin it in the file`);
    if (/@sha256:[0-9a-f]{64}$/.test(s.image)) continue;
    const lastPart = s.image.split('/').pop() ?? '';
    const tag = lastPart.includes(':') ? lastPart.slice(lastPart.indexOf(':') + 1) : undefined;
    if (tag === undefined) problems.push(`${s.name}: '${s.image}' has no tag`);
    else if (tag === 'latest' || tag === '') problems.push(`${s.name}: '${s.image}' is not pinned`);
  }
  assert.deepEqual(problems, []);
});

test('compose - publishes the Temporal, Temporal UI and NATS ports without host-port clashes', () => {
  const published = (name: string) =>
    svc(name)
      .ports.filter((p) => p.published !== undefined)
      .map((p) => `${p.published}->${p.target}`);
  assert.ok(published('temporal').includes('7233->7233'), 'temporal must publish 7233:7233');
  assert.ok(published('temporal-ui').includes('8233->8080'), 'temporal-ui must publish 8233:8080');
  assert.ok(published('nats').includes('4222->4222'), 'nats must publish 4222:4222');

  const owners = new Map<string, string>();
  const clashes: string[] = [];
  for (const s of compose.services.values()) {
    for (const p of s.ports) {
      if (p.published === undefined) continue;
      const key = `${p.published}/${p.protocol}`;
      const owner = owners.get(key);
      if (owner) clashes.push(`host port ${key} is published by both ${owner} and ${s.name}`);
      owners.set(key, s.name);
    }
  }
  assert.deepEqual(clashes, []);
});

test('compose - depends_on names existing services with valid conditions and no cycle', () => {
  const problems: string[] = [];
  for (const s of compose.services.values()) {
    for (const [dep, condition] of s.dependsOn) {
      const target = compose.services.get(dep);
      if (!target) {
        problems.push(`${s.name} depends on '${dep}', which is not a service`);
        continue;
      }
      if (!CONDITIONS.has(condition)) problems.push(`${s.name} -> ${dep}: unknown condition '${condition}'`);
      if (condition === 'service_healthy' && (!target.healthcheck?.test || target.healthcheck.disable)) {
        problems.push(`${s.name} waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
      }
      if (condition === 'service_completed_successfully' && (target.restart ?? 'no') !== 'no') {
        problems.push(`${s.name} waits for ${dep} to complete, but ${dep} restarts ('${target.restart}')`);
      }
    }
  }
  assert.deepEqual(problems, []);

  // Depth-first search; a service met again while still on the stack closes a cycle.
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') assert.fail(`dependency cycle: ${[...path, name].join(' -> ')}`);
    state.set(name, 'visiting');
    for (const dep of compose.services.get(name)?.dependsOn.keys() ?? []) visit(dep, [...path, name]);
    state.set(name, 'done');
  };
  for (const name of compose.services.keys()) visit(name, []);

  const expectEdges = (from: string, edges: Record<string, string>) => {
    for (const [to, condition] of Object.entries(edges)) {
      assert.equal(svc(from).dependsOn.get(to), condition, `${from} must wait for ${to} (${condition})`);
    }
  };
  expectEdges('temporal', { postgresql: 'service_healthy' });
  expectEdges('temporal-search-attributes', { temporal: 'service_healthy' });
  expectEdges('worker', {
    temporal: 'service_healthy',
    'temporal-search-attributes': 'service_completed_successfully',
    nats: 'service_healthy',
    registry: 'service_healthy',
    keys: 'service_completed_successfully',
  });
  for (const agent of AGENTS) {
    expectEdges(agent, {
      nats: 'service_healthy',
      keys: 'service_completed_successfully',
      [ENROLS[agent]!]: 'service_completed_successfully',
    });
    expectEdges(ENROLS[agent]!, { nats: 'service_healthy', keys: 'service_completed_successfully' });
  }
});

test('compose - declares exactly the named volumes it uses', () => {
  const used = new Set<string>();
  const problems: string[] = [];
  for (const s of compose.services.values()) {
    for (const m of s.volumes) {
      if (m.type === 'anonymous')
        problems.push(`${s.name}: anonymous volume at ${m.target} is lost on recreate`);
      if (m.type !== 'volume' || !m.source) continue;
      used.add(m.source);
      if (!compose.declaredVolumes.has(m.source))
        problems.push(`${s.name}: volume '${m.source}' is not declared`);
    }
  }
  for (const name of compose.declaredVolumes) {
    if (!used.has(name)) problems.push(`volume '${name}' is declared but no service mounts it`);
  }
  assert.deepEqual(problems, []);
});

test('compose - runs only slotflow commands from the CLI contract', () => {
  const problems: string[] = [];
  for (const s of slotflowServices) {
    if (s.entrypoint !== undefined) problems.push(`${s.name}: overrides the slotflow image's entrypoint`);
    try {
      invocation(s);
    } catch (err) {
      problems.push(`${s.name}: ${(err as Error).message}`);
    }
  }
  assert.deepEqual(problems, []);
  assert.equal(invocation(svc('worker')).command, 'worker');
  assert.equal(invocation(svc('keys')).command, 'keys init');
  for (const agent of AGENTS)
    assert.equal(invocation(svc(agent)).command, 'agent', `${agent} runs the agent`);
});

test('compose - enrols each agent: node preauthorize of its node id into its data volume, with the control-plane key', () => {
  const keysHome = svc('keys').environment['SLOTFLOW_HOME'] ?? '';
  const keysVolume = mountAt(svc('keys'), keysHome)?.source;
  for (const agent of AGENTS) {
    const a = invocation(svc(agent));
    const enrol = svc(ENROLS[agent]!);
    const e = invocation(enrol);
    assert.equal(e.command, 'node preauthorize', `${enrol.name} pre-authorises the node`);
    assert.equal(e.flags['node-id'], a.flags['node-id'], `${enrol.name} enrols ${agent}'s node id`);
    const agentData = mountAt(svc(agent), a.flags['data-dir'] ?? '');
    const enrolData = mountAt(enrol, e.flags['data-dir'] ?? '');
    assert.ok(enrolData && !enrolData.readOnly, `${enrol.name} writes the node's key into a volume`);
    assert.equal(enrolData.source, agentData?.source, `${enrol.name} writes into ${agent}'s data volume`);
    assert.equal(
      posix.relative(enrolData.target, e.flags['data-dir'] ?? ''),
      posix.relative(agentData?.target ?? '', a.flags['data-dir'] ?? ''),
      `${enrol.name} writes where ${agent} reads (peer.key, enrolment.json)`,
    );
    const home = enrol.environment['SLOTFLOW_HOME'] ?? '';
    assert.equal(mountAt(enrol, home)?.source, keysVolume, `${enrol.name} signs with the control-plane key`);
    assert.equal(enrol.restart, 'no', `${enrol.name} runs once`);
  }
});

test('compose - gives each agent its own data volume and node id', () => {
  const nodeIds = new Map<string, string>();
  const dataVolumes = new Map<string, string>();
  const problems: string[] = [];
  for (const agent of AGENTS) {
    const { flags } = invocation(svc(agent));
    const nodeId = flags['node-id'] ?? '';
    if (nodeIds.has(nodeId)) problems.push(`${agent} reuses node id '${nodeId}' of ${nodeIds.get(nodeId)}`);
    nodeIds.set(nodeId, agent);

    const dataDir = flags['data-dir'] ?? '';
    const m = mountAt(svc(agent), dataDir);
    if (!m || m.type !== 'volume' || !m.source || m.readOnly) {
      problems.push(
        `${agent}: --data-dir ${dataDir} is not on a writable named volume, so its journal is lost`,
      );
      continue;
    }
    // Only its own enrolment job writes there too (the node's key and certificate), before it.
    const sharers = [...compose.services.values()].filter(
      (s) =>
        s.name !== agent &&
        s.name !== ENROLS[agent] &&
        s.volumes.some((v) => v.type === 'volume' && v.source === m.source),
    );
    if (sharers.length)
      problems.push(`${agent}: data volume '${m.source}' is also mounted by ${sharers[0]?.name}`);
    if (dataVolumes.has(m.source))
      problems.push(`${agent} and ${dataVolumes.get(m.source)} share '${m.source}'`);
    dataVolumes.set(m.source, agent);
  }
  assert.deepEqual(problems, []);
});

test('compose - the worker gets the signing key; agents get only the public key, read-only', () => {
  const keys = svc('keys');
  const home = keys.environment['SLOTFLOW_HOME'];
  assert.ok(home, 'keys must set SLOTFLOW_HOME, where `keys init` writes the key pair');
  const keysMount = mountAt(keys, home);
  assert.ok(keysMount?.type === 'volume' && !keysMount.readOnly, `keys must write ${home} to a named volume`);
  const exportDir = invocation(keys).flags['export-public'];
  assert.ok(exportDir, 'keys must export the public key for the agents (--export-public)');
  const trustedMount = mountAt(keys, exportDir);
  assert.ok(
    trustedMount?.type === 'volume' && trustedMount.source !== keysMount.source,
    'the public key goes to its own volume',
  );
  const worker = svc('worker');
  assert.equal(
    mountAt(worker, worker.environment['SLOTFLOW_HOME'] ?? '')?.source,
    keysMount.source,
    'the worker signs: it mounts the keys volume',
  );
  for (const name of AGENTS) {
    const s = svc(name);
    assert.ok(!s.volumes.some((v) => v.source === keysMount.source), `${name} must not see the private key`);
    const dir = invocation(s).flags['trusted-keys'];
    assert.ok(dir, `${name} must pass --trusted-keys`);
    const m = mountAt(s, dir);
    assert.equal(m?.source, trustedMount.source, `${name} must mount the trusted volume at ${dir}`);
    assert.ok(m?.readOnly, `${name} must mount the trusted volume read-only`);
  }
});

test("compose - agents bootstrap to another agent's p2p address", () => {
  const listen = new Map<string, number>();
  for (const agent of AGENTS) {
    const addr = invocation(svc(agent)).flags['p2p-listen'];
    assert.ok(addr, `${agent} must set --p2p-listen so peers can dial it`);
    const parsed = parseMultiaddr(addr);
    assert.ok(typeof parsed !== 'string', parsed as string);
    listen.set(agent, parsed.port);
  }
  const problems: string[] = [];
  let bootstrapping = 0;
  for (const agent of AGENTS) {
    const list = invocation(svc(agent)).flags['bootstrap'];
    if (!list) continue;
    bootstrapping++;
    for (const text of list.split(',')) {
      const addr = parseMultiaddr(text.trim());
      if (typeof addr === 'string') {
        problems.push(`${agent}: ${addr}`);
        continue;
      }
      if (!addr.proto.startsWith('dns')) problems.push(`${agent}: ${text} should name a service, not an IP`);
      else if (addr.host === agent) problems.push(`${agent} bootstraps to itself`);
      else if (!listen.has(addr.host))
        problems.push(`${agent} bootstraps to '${addr.host}', which is not an agent`);
      else if (listen.get(addr.host) !== addr.port) {
        problems.push(
          `${agent} dials ${addr.host} on ${addr.port}, but it listens on ${listen.get(addr.host)}`,
        );
      }
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(bootstrapping >= AGENTS.length - 1, 'all agents but the first must bootstrap to a peer');
});

test('compose - NATS requires TLS and credentials; each agent mounts only its own creds', () => {
  const auth = svc('nats-auth');
  const { flags } = invocation(auth);
  const authDir = flags['auth-dir'] ?? '';
  const exportDir = flags['export'] ?? '';
  const nats = svc('nats');
  const command = (nats.command ?? []) as string[];
  const config = command[command.indexOf('-c') + 1] ?? '';
  assert.ok(command.includes('-c'), 'nats must run with the configuration nats-auth writes');
  assert.equal(dirname(config), authDir, 'the configuration lives in the auth dir');
  const authVolume = mountAt(auth, authDir);
  assert.ok(authVolume?.type === 'volume', 'nats-auth writes the auth dir to a named volume');
  assert.equal(mountAt(nats, config)?.source, authVolume.source, 'nats mounts that volume at the same path');
  assert.ok(mountAt(nats, config)?.readOnly, 'nats mounts the auth volume read-only');
  assert.equal(nats.dependsOn.get('nats-auth'), 'service_completed_successfully');
  // Only the TLS client port is published: no plaintext monitoring port outside the network.
  assert.deepEqual(
    nats.ports.filter((p) => p.published !== undefined).map((p) => p.target),
    [4222],
  );

  const nodesOf = (flags['nodes'] ?? '').split(',');
  const holders = new Map<string, string>(); // creds volume -> holder
  for (const holder of ['worker', 'cli', ...nodesOf]) {
    const m = mountAt(auth, `${exportDir}/${holder}/nats.creds`);
    assert.ok(m?.type === 'volume' && m.source, `nats-auth exports ${holder}'s creds to a volume of its own`);
    holders.set(m.source, holder);
  }
  const expectCreds = (s: Service, holder: string) => {
    const creds = s.environment['NATS_CREDS'] ?? '';
    const ca = s.environment['NATS_TLS_CA'] ?? '';
    const m = mountAt(s, creds);
    assert.ok(m?.source, `${s.name}: NATS_CREDS ${creds} is not on a volume`);
    assert.equal(holders.get(m.source), holder, `${s.name} must mount ${holder}'s creds`);
    assert.ok(m.readOnly, `${s.name} mounts its creds read-only`);
    assert.equal(mountAt(s, ca)?.source, m.source, `${s.name}: the CA comes with the creds`);
    assert.ok(
      !s.volumes.some((v) => v.source === authVolume.source),
      `${s.name} must not see the operator's keys`,
    );
  };
  expectCreds(svc('worker'), 'worker');
  for (const enrol of Object.values(ENROLS)) expectCreds(svc(enrol), 'cli');
  for (const agent of AGENTS) expectCreds(svc(agent), invocation(svc(agent)).flags['node-id'] ?? '');
});

test('compose - points the worker and the agents at Temporal and NATS services that exist', () => {
  const problems: string[] = [];
  const checkAddress = (s: Service, variable: string, scheme: string | undefined) => {
    const value = s.environment[variable];
    if (!value) return problems.push(`${s.name}: ${variable} is not set`);
    for (const entry of value.split(',')) {
      const m = (scheme ? new RegExp(`^${scheme}://([^:/]+):(\\d+)$`) : /^([^:/]+):(\d+)$/).exec(
        entry.trim(),
      );
      if (!m) return problems.push(`${s.name}: ${variable}='${entry}' is not ${scheme ?? 'host'}:port`);
      const [, host = '', port = ''] = m;
      const target = compose.services.get(host);
      if (!target) return problems.push(`${s.name}: ${variable} names '${host}', which is not a service`);
      if (!target.ports.some((p) => p.target === Number(port))) {
        problems.push(`${s.name}: ${variable} uses port ${port}, which ${host} does not declare`);
      }
      if (!s.dependsOn.has(host)) problems.push(`${s.name} uses ${host} but does not depend on it`);
    }
  };
  const worker = svc('worker');
  checkAddress(worker, 'TEMPORAL_ADDRESS', undefined);
  checkAddress(worker, 'NATS_URL', 'tls');
  for (const agent of AGENTS) checkAddress(svc(agent), 'NATS_URL', 'tls');
  assert.deepEqual(problems, []);

  const namespace = worker.environment['TEMPORAL_NAMESPACE'];
  assert.ok(namespace, 'worker must set TEMPORAL_NAMESPACE');
  assert.equal(
    svc('temporal').environment['DEFAULT_NAMESPACE'],
    namespace,
    'temporal must create that namespace',
  );
  assert.equal(
    svc('temporal-search-attributes').environment['TEMPORAL_NAMESPACE'],
    namespace,
    'search attributes must be registered in the namespace the worker uses',
  );
});

test('compose - bind-mounts only paths that exist in the repo', () => {
  const problems: string[] = [];
  for (const s of compose.services.values()) {
    for (const m of s.volumes) {
      if (m.type !== 'bind' || !m.source) continue;
      if (!m.source.startsWith('./'))
        problems.push(`${s.name}: bind source '${m.source}' is not repo-relative`);
      else if (!existsSync(resolve(ROOT, m.source))) problems.push(`${s.name}: '${m.source}' does not exist`);
    }
  }
  assert.deepEqual(problems, []);

  const temporal = svc('temporal');
  const dynamicConfig = temporal.environment['DYNAMIC_CONFIG_FILE_PATH'];
  assert.ok(dynamicConfig, 'temporal must set DYNAMIC_CONFIG_FILE_PATH');
  const file = repoFileAt(temporal, posix.resolve('/etc/temporal', dynamicConfig));
  assert.ok(
    file && existsSync(file),
    `${dynamicConfig} (under /etc/temporal) is not a bind-mounted repo file`,
  );
  const config: unknown = parseYaml(readFileSync(file, 'utf8'));
  assert.ok(config && typeof config === 'object', `${file} is not a YAML map`);
  for (const [key, values] of Object.entries(config)) {
    assert.ok(
      Array.isArray(values) && values.every((v) => v && typeof v === 'object' && 'value' in v),
      `${file}: ${key} must be a list of { value, constraints }`,
    );
  }
});

test("compose - registers slotflow's search attributes with their types", () => {
  const job = svc('temporal-search-attributes');
  const argv = [
    ...(Array.isArray(job.entrypoint) ? job.entrypoint : []),
    ...(Array.isArray(job.command) ? job.command : []),
  ];
  const scriptPath = argv.find((a) => a.endsWith('.sh'));
  assert.ok(scriptPath, 'temporal-search-attributes must run a registration script');
  const script = repoFileAt(job, scriptPath);
  assert.ok(script && existsSync(script), `${scriptPath} is not bind-mounted from the repo`);
  const text = readFileSync(script, 'utf8');
  const registered = Object.fromEntries(
    [...text.matchAll(/--name\s+(\w+)\s+--type\s+(\w+)/g)].map((m) => [m[1], m[2]]),
  );
  assert.deepEqual(registered, SEARCH_ATTRIBUTES);
  assert.match(text, /temporal operator search-attribute create/);
});

test('compose - builds the slotflow image from the repo-root Dockerfile', () => {
  assert.ok(slotflowServices.length > 0, 'no service builds the slotflow image');
  const images = new Set(slotflowServices.map((s) => s.image));
  assert.equal(images.size, 1, `slotflow services must share one image name, got ${[...images].join(', ')}`);
  for (const s of slotflowServices) {
    assert.equal(
      resolve(ROOT, s.build?.context ?? ''),
      resolve(ROOT),
      `${s.name}: build context is not the repo root`,
    );
  }
  const dockerfile = join(ROOT, slotflowServices[0]?.build?.dockerfile ?? 'Dockerfile');
  assert.ok(existsSync(dockerfile) && statSync(dockerfile).isFile(), `${dockerfile} does not exist`);

  const text = readFileSync(dockerfile, 'utf8');
  const from = /^FROM\s+node:(\d+)[^\s]*/m.exec(text);
  assert.ok(from && Number(from[1]) >= 24, 'the Dockerfile must start FROM node:24 (runs the .ts sources)');
  assert.match(text, /npm ci --omit=dev/, 'the image installs production dependencies with npm ci');
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(text);
  assert.ok(entry?.[1], 'the Dockerfile needs an exec-form ENTRYPOINT');
  const main = (JSON.parse(entry[1]) as string[]).find((a) => a.endsWith('.ts'));
  assert.ok(main !== undefined && main.startsWith('/app/'), 'ENTRYPOINT must run a .ts file under /app');
  assert.ok(
    existsSync(join(ROOT, main.slice('/app/'.length))),
    `ENTRYPOINT runs ${main}, which is not in the repo`,
  );

  const ignored = existsSync(join(ROOT, '.dockerignore'))
    ? readFileSync(join(ROOT, '.dockerignore'), 'utf8')
        .split('\n')
        .map((l) => l.trim().replace(/^\/|\/$/g, ''))
    : [];
  for (const needed of [
    'package.json',
    'package-lock.json',
    main.slice('/app/'.length).split('/')[0] ?? '',
  ]) {
    assert.ok(!ignored.includes(needed) && !ignored.includes('*'), `.dockerignore excludes ${needed}`);
  }
});

/**
 * A docker compose to validate with: the docker CLI plugin, a `docker-compose` on PATH, or the
 * standalone binary `go install github.com/docker/compose/v2/cmd@v2.29.7` builds (as `cmd`) into
 * GOBIN=$SLOTFLOW_CACHE/gobin.
 */
function composeCommand(): { file: string; args: string[] } | undefined {
  const cache = process.env['SLOTFLOW_CACHE'] ?? join(homedir(), '.cache', 'slotflow');
  const candidates = [
    { file: 'docker', args: ['compose'] },
    { file: 'docker-compose', args: [] },
    { file: join(cache, 'gobin', 'cmd'), args: [] },
  ];
  return candidates.find((c) => {
    const v = spawnSync(c.file, [...c.args, 'version'], { encoding: 'utf8', timeout: 30_000 });
    return !v.error && v.status === 0 && /compose/i.test(v.stdout + v.stderr);
  });
}

test('compose - docker compose config accepts the file', (t) => {
  const compose = composeCommand();
  if (!compose) {
    t.skip(
      'no docker compose here (plugin, docker-compose, or $SLOTFLOW_CACHE/gobin/cmd from `GOBIN=$SLOTFLOW_CACHE/gobin go install github.com/docker/compose/v2/cmd@v2.29.7`); the structural checks above still ran',
    );
    return;
  }
  const config = spawnSync(compose.file, [...compose.args, '-f', COMPOSE_FILE, 'config', '--quiet'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(config.status, 0, `docker compose config rejected the file:\n${config.stderr}`);
});
