// Fuzz: the files the agent and the CLI read back from disk — the agent configuration, the
// journal, the trusted-keys and minimum-version state files, the keyring, the enrolment
// certificate, the kept lease reports and the held plans. Each case writes a mutated (or random)
// document, opens it the way the agent does, and checks: the loader returns or throws its own
// error class (never a TypeError or the like), a refusal names a changed field or the file, and a
// refused file is left exactly as it was (nothing else appears in its directory either).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { AgentConfigError, loadAgentConfig } from '../../node-agent/config.ts';
import { JournalError, SlotDriverError, StateFileError } from '../../node-agent/errors.ts';
import { createFileSlotDriver } from '../../node-agent/slot-drivers/file.ts';
import { openJournal } from '../../node-agent/journal.ts';
import { emptyJournal } from '../../node-agent/journal-data.ts';
import { openTrustStore } from '../../node-agent/trusted-keys.ts';
import { openVersionFloor } from '../../node-agent/version-floor.ts';
import { openPlanBook } from '../../node-agent/plans.ts';
import { loadOwnReports } from '../../p2p/coordination/own-reports.ts';
import { EnrolmentError } from '../../p2p/errors.ts';
import { loadOwnEnrolment } from '../../p2p/enrolment/own.ts';
import { SchemaError, canonicalJson } from '../../schema/index.ts';
import { KeyError, initKeys, keyIdOf, readKeyring, trustKeys } from '../../signing/index.ts';
import { cleanupDirs, controlPlaneKey, tempDir, testLog, testPlan, writeEnrolment } from '../p2p/helpers.ts';
import { nodeIdentityFromPeerKey } from '../../signing/node-identity.ts';
import { loadOrCreatePeerKey } from '../../p2p/index.ts';
import { assertNamesField, fuzz, mutationsOf, randomJson, type Mutation } from './harness.ts';

test.after(cleanupDirs);
const key = await controlPlaneKey();
const trusted = trustKeys(key.publicKey);

/** Names and contents of every file under dir. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    try {
      out.set(name, await readFile(join(dir, name), 'latin1'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
      out.set(name, '<dir>');
    }
  }
  return out;
}

/** A document as a file's bytes: mostly the mutated JSON, sometimes cut short or not JSON at all. */
function fileText(valid: unknown): fc.Arbitrary<{ text: string; mutations: readonly Mutation[] }> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: mutationsOf(valid).map((m) => ({
        text: JSON.stringify(m.value) ?? '',
        mutations: m.mutations,
      })),
    },
    { weight: 1, arbitrary: randomJson.map((v) => ({ text: JSON.stringify(v), mutations: [] })) },
    {
      weight: 1,
      arbitrary: fc
        .nat({ max: JSON.stringify(valid).length - 1 })
        .map((n) => ({ text: JSON.stringify(valid).slice(0, n), mutations: [] })),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((text) => ({ text, mutations: [] })) },
  );
}

/**
 * Writes `text` at `dir/name`, runs `open`, and checks the outcome: success, or one of `errors`
 * whose message names the file or a changed field, with the directory untouched.
 */
async function refusesCleanly(
  what: string,
  dir: string,
  name: string,
  text: string,
  mutations: readonly Mutation[],
  open: () => Promise<unknown>,
  errors: readonly (new (...args: never[]) => Error)[],
  others: Record<string, string> = {},
): Promise<'accepted' | 'refused'> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [other, body] of Object.entries(others)) await writeFile(join(dir, other), body);
  await writeFile(join(dir, name), text);
  const before = await snapshot(dir);
  try {
    await open();
    return 'accepted';
  } catch (err) {
    assert.ok(
      errors.some((E) => err instanceof E),
      `${what}: expected ${errors.map((e) => e.name).join(' or ')}, got ${(err as Error)?.name}: ${(err as Error)?.message}`,
    );
    const message = (err as Error).message;
    assert.ok(message.length > 0);
    if (!message.includes(name)) assertNamesField(message, mutations, what);
    assert.deepEqual(
      await snapshot(dir),
      before,
      `${what}: a refused file was changed or something was written`,
    );
    return 'refused';
  }
}

test('fuzz - agent configuration file: accepted or refused naming the field, nothing written', async () => {
  const home = await tempDir();
  const valid = {
    nodeId: 'edge-1',
    dataDir: '/var/lib/slotflow',
    labels: { site: 'north', tier: 'edge' },
    slotDriver: 'file',
    reboot: 'simulate',
    initialVersion: '1.0.0',
    heartbeatInterval: '15s',
    healthChecks: [{ name: 'api', command: ['curl', '-fsS', 'http://127.0.0.1/healthz'], timeout: '10s' }],
    artifactSources: [{ type: 'nats' }, { type: 'http', url: 'https://mirror.example/images' }],
    p2p: { listen: ['/ip4/0.0.0.0/tcp/4001'], bootstrap: [], openMesh: true, relay: { serve: false } },
  };
  // Flags and environment are merged over the file field by field: vary them too.
  const word = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.constantFrom('edge-2', '/tmp/x', '15s', 'grub', 'a=b', ''),
  );
  const flags = fc.record(
    {
      nodeId: word,
      labels: word,
      slotDriver: word,
      p2pListen: fc.constantFrom('/ip4/127.0.0.1/tcp/0', '', 'x,y'),
      bootstrap: word,
      healthCheck: fc.array(word, { maxLength: 2 }),
      artifactDir: fc.array(word, { maxLength: 2 }),
      artifactUrl: fc.array(word, { maxLength: 2 }),
      heartbeatInterval: word,
    },
    { requiredKeys: [] },
  );
  const env = fc.record(
    {
      SLOTFLOW_NODE_ID: word,
      SLOTFLOW_LABELS: word,
      SLOTFLOW_P2P_LISTEN: word,
      SLOTFLOW_LAB: fc.constantFrom('1', '0', 'yes', ''),
    },
    { requiredKeys: [] },
  );
  const arb = fc.tuple(
    fileText(valid),
    fc.boolean(),
    fc.option(flags, { nil: {} }),
    fc.option(env, { nil: {} }),
  );
  await fuzz('config-file', arb, async ([{ text, mutations }, yaml, extraFlags, extraEnv]) => {
    const dir = join(home, 'cfg');
    let body = text;
    if (yaml) {
      try {
        body = toYaml(JSON.parse(text));
      } catch {
        // not JSON: write it as it is
      }
    }
    const changed = Object.keys(extraFlags).length + Object.keys(extraEnv).length > 0;
    await refusesCleanly(
      'agent configuration',
      dir,
      'agent.yaml',
      body,
      // A refusal may be about a flag or variable rather than the changed field.
      changed ? [] : mutations,
      () =>
        loadAgentConfig({ flags: { ...extraFlags, config: join(dir, 'agent.yaml') }, env: extraEnv, home }),
      [AgentConfigError, SchemaError],
    );
  });
});

test('fuzz - agent journal: opened or refused naming the file, never rewritten on refusal', async () => {
  const root = await tempDir();
  const journal = emptyJournal(new Date('2026-11-22T10:00:00Z'));
  journal.nonces = { ['n'.repeat(24)]: Date.parse('2026-11-23T10:00:00Z') };
  journal.eventSeq = 7;
  await fuzz('journal', fileText(journal), async ({ text, mutations }) => {
    const dir = join(root, 'journal');
    await refusesCleanly(
      'journal',
      dir,
      'journal.json',
      text,
      mutations,
      () => openJournal(join(dir, 'journal.json')),
      [JournalError],
    );
  });
});

test('fuzz - trusted-keys and minimum-version files: opened or refused, never rewritten on refusal', async () => {
  const root = await tempDir();
  const other = await controlPlaneKey();
  const trustFile = {
    v: 1,
    trusted: [
      {
        keyId: other.keyId,
        publicKey: other.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        trustedAt: '2026-11-22T10:00:00.000Z',
        announcedBy: key.keyId,
      },
    ],
    revoked: [{ keyId: '0123456789abcdef', revokedAt: '2026-11-22T10:00:00.000Z', revokedBy: key.keyId }],
  };
  const floorFile = { v: 1, version: '2.1.0', raisedAt: '2026-11-22T10:00:00.000Z' };
  const arb = fc.oneof(
    fileText(trustFile).map((f) => ({ ...f, which: 'trust' as const })),
    fileText(floorFile).map((f) => ({ ...f, which: 'floor' as const })),
  );
  await fuzz('state-files', arb, async ({ text, mutations, which }) => {
    const dir = join(root, which);
    const name = which === 'trust' ? 'trusted-keys.json' : 'min-version.json';
    await refusesCleanly(
      name,
      dir,
      name,
      text,
      mutations,
      async () => {
        if (which !== 'trust') return openVersionFloor(join(dir, name));
        const store = await openTrustStore({ file: join(dir, name), bootstrap: trusted });
        // A key is trusted only under its own id, whatever id the file claims for it.
        for (const [id, k] of store.keys)
          assert.equal(keyIdOf(k), id, `key trusted under another key's id ${id}`);
        return store;
      },
      [StateFileError, KeyError],
    );
  });
});

test('fuzz - keyring: read or refused naming the file, never rewritten', async () => {
  const home = await tempDir();
  await initKeys(home);
  const ringFile = join(home, 'keys', 'keyring.json');
  const valid = await readKeyring(home);
  await fuzz('keyring', fileText(valid), async ({ text, mutations }) => {
    await writeFile(ringFile, text);
    const before = await snapshot(join(home, 'keys'));
    try {
      await readKeyring(home);
    } catch (err) {
      assert.ok(
        err instanceof KeyError,
        `expected a KeyError, got ${(err as Error).name}: ${(err as Error).message}`,
      );
      if (!err.message.includes('keyring.json')) assertNamesField(err.message, mutations, 'keyring');
      assert.deepEqual(await snapshot(join(home, 'keys')), before);
    }
  });
});

test('fuzz - enrolment certificate file: loaded only when it verifies, refused with EnrolmentError', async () => {
  const dataDir = await tempDir();
  const cert = await writeEnrolment(dataDir, 'node-1', key);
  const { key: peerKey } = await loadOrCreatePeerKey(join(dataDir, 'peer.key'));
  const peerId = nodeIdentityFromPeerKey(peerKey).peerId;
  await fuzz('enrolment-file', fileText(cert), async ({ text }) => {
    await writeFile(join(dataDir, 'enrolment.json'), text);
    const before = await snapshot(dataDir);
    try {
      const got = await loadOwnEnrolment({ dataDir, nodeId: 'node-1', peerId, trustedKeys: trusted });
      // The same certificate (its signature may be spelt without base64 padding).
      if (got)
        assert.equal(
          canonicalJson({ ...got, issuer: got.issuer.keyId }),
          canonicalJson({ ...cert, issuer: cert.issuer.keyId }),
        );
    } catch (err) {
      assert.ok(
        err instanceof EnrolmentError,
        `expected an EnrolmentError, got ${(err as Error).name}: ${(err as Error).message}`,
      );
      assert.match(err.message, /enrolment\.json/);
      assert.deepEqual(await snapshot(dataDir), before);
    }
  });
});

test('fuzz - kept lease reports and held plans: a bad file is set aside or ignored, never thrown', async () => {
  const root = await tempDir();
  const reports = {
    v: 1,
    reports: [
      { v: 1, type: 'started', rolloutId: 'r-1', nodeId: 'node-1', at: '2026-11-22T10:00:00.000Z' },
      {
        v: 1,
        type: 'done',
        rolloutId: 'r-1',
        nodeId: 'node-1',
        at: '2026-11-22T10:01:00.000Z',
        outcome: 'succeeded',
      },
    ],
  };
  const plans = [testPlan(key, 'r-1', [['node-1']])];
  const arb = fc.oneof(
    fileText(reports).map((f) => ({ ...f, which: 'reports' as const })),
    fileText(plans).map((f) => ({ ...f, which: 'plans' as const })),
  );
  await fuzz('kept-reports-and-plans', arb, async ({ text, which }) => {
    const dir = join(root, which);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${which}.json`);
    await writeFile(file, text);
    if (which === 'reports') {
      const got = await loadOwnReports(file, 'node-1', testLog());
      const after = await snapshot(dir);
      // Read as they are, or moved aside byte for byte (documented: they only speed peers up).
      const bytes = Buffer.from(text).toString('latin1');
      if (after.has('reports.json')) assert.equal(after.get('reports.json'), bytes);
      else {
        assert.equal(after.get('reports.json.unreadable'), bytes);
        assert.deepEqual(got, []);
      }
    } else {
      const book = await openPlanBook({ file, trustedKeys: trusted, log: testLog() });
      for (const p of book.all()) assert.equal(p.signature, plans[0]!.signature);
      assert.equal(await readFile(file, 'utf8'), text, 'opening the plan book rewrote its file');
    }
  });
});

test('fuzz - file slot driver boot state and slot metadata: read or refused with SlotDriverError naming the file', async () => {
  const root = await tempDir();
  const bootState = { v: 1, active: 'a', next: 'b', tries: 1, booted: 'a', trial: false, bad: [] };
  const meta = { version: '2.0.0', digest: `sha256:${'ab'.repeat(32)}` };
  const arb = fc.oneof(
    fileText(bootState).map((f) => ({ ...f, name: 'boot-state.json' })),
    fileText(meta).map((f) => ({ ...f, name: 'b.json' })),
  );
  await fuzz('boot-state', arb, async ({ text, mutations, name }) => {
    const dir = join(root, 'slots');
    const others = {
      'a.json': JSON.stringify({ version: '1.0.0' }),
      'boot-state.json': JSON.stringify(bootState),
      'b.json': JSON.stringify(meta),
    };
    await refusesCleanly(
      name,
      dir,
      name,
      text,
      mutations,
      () => createFileSlotDriver({ slotsDir: dir }).status(),
      [SlotDriverError],
      others,
    );
  });
});

test('files - regression: an empty slot metadata file is a SlotDriverError naming it, not a SyntaxError', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'a.json'), JSON.stringify({ version: '1.0.0' }));
  await writeFile(join(dir, 'b.json'), '');
  await writeFile(
    join(dir, 'boot-state.json'),
    JSON.stringify({ v: 1, active: 'a', next: null, tries: 0, booted: 'a', trial: false, bad: [] }),
  );
  await assert.rejects(
    createFileSlotDriver({ slotsDir: dir }).status(),
    (err: Error) => err instanceof SlotDriverError && err.message.includes(join(dir, 'b.json')),
  );
  await writeFile(join(dir, 'b.json'), JSON.stringify({ version: '' }));
  await assert.rejects(
    createFileSlotDriver({ slotsDir: dir }).status(),
    (err: Error) => err instanceof SlotDriverError && /version/.test(err.message),
  );
});

test('files - regression: a config file whose artifactSources or p2p has the wrong shape is refused naming it', async () => {
  const home = await tempDir();
  const file = join(home, 'agent.yaml');
  const cases: [string, Parameters<typeof loadAgentConfig>[0]['flags'], RegExp][] = [
    // Merging --artifact-dir into a non-list threw a bare TypeError.
    ['artifactSources: 5\n', { artifactDir: ['/srv/images'] }, /artifactSources: expected a list/],
    // A scalar p2p was dropped silently, a string one reported as unknown fields p2p.0, p2p.1, ...
    ['p2p: 5\n', {}, /p2p: expected a mapping/],
    ['p2p: abc\n', {}, /p2p: expected a mapping/],
    ['p2p: [1]\n', {}, /p2p: expected a mapping/],
  ];
  for (const [extra, flags, expected] of cases) {
    await writeFile(file, `nodeId: edge-1\ndataDir: /var/lib/slotflow\n${extra}`);
    await assert.rejects(
      loadAgentConfig({ flags: { ...flags, config: file }, env: {}, home }),
      (err: Error) => err instanceof SchemaError && expected.test(err.message) && err.message.includes(file),
      extra,
    );
  }
});

test('files - regression: a trusted-keys file that files a key under another id is refused naming the entry', async () => {
  const dir = await tempDir();
  const other = await controlPlaneKey();
  const file = join(dir, 'trusted-keys.json');
  const text = JSON.stringify({
    v: 1,
    // The id of the test's control-plane key, the public key of another one.
    trusted: [
      {
        keyId: key.keyId,
        publicKey: other.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        trustedAt: '2026-11-22T10:00:00.000Z',
        announcedBy: key.keyId,
      },
    ],
    revoked: [],
  });
  await writeFile(file, text);
  await assert.rejects(
    openTrustStore({ file, bootstrap: trusted }),
    (err: Error) => err instanceof StateFileError && /trusted\[0\]\.keyId/.test(err.message),
  );
  assert.equal(await readFile(file, 'utf8'), text);
});
