// Fuzz: signed command envelopes through the agent's own checks (signing/verifyCommand, then the
// command decision), and signed rollout plans (signing/verifyPlan, the relay checks of gossip).
// Inputs are mutations of validly signed messages (so they get past JSON and most of the shape)
// and random JSON. Properties: nothing throws, a malformed message is refused naming a changed
// field, a refused message never burns a nonce (the untouched command still verifies after it),
// and no change to a signed message gets it accepted with different content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide, type DecisionContext } from '../../node-agent/command-decision.ts';
import { emptyJournal } from '../../node-agent/journal-data.ts';
import type { SlotStatus } from '../../node-agent/slot-drivers/driver.ts';
import {
  CommandGossip,
  canonicalJson,
  type AnyCommandInput,
  type SignedCommand,
} from '../../schema/index.ts';
import {
  createMemoryNonceStore,
  newNonce,
  signCommand,
  trustKeys,
  verifyCommand,
  verifyPlan,
} from '../../signing/index.ts';
import { checkRelayedCommand, checkRelayedPlan } from '../../p2p/gossip/signatures.ts';
import { cleanupDirs, controlPlaneKey, testPlan } from '../p2p/helpers.ts';
import { assertNamesField, fuzz, inputsLike, mutationsOf, randomJson } from './harness.ts';

const NOW = Date.now();
const key = await controlPlaneKey();
const trusted = trustKeys(key.publicKey);
test.after(cleanupDirs);

const digest = `sha256:${'ab'.repeat(32)}`;
function commands(nonce: () => string): AnyCommandInput[] {
  const base = {
    v: 1 as const,
    nonce: nonce(),
    issuedAt: new Date(NOW).toISOString(),
    expiresAt: new Date(NOW + 600_000).toISOString(),
    nodeId: 'n-1',
  };
  return [
    {
      ...base,
      type: 'Upgrade',
      commandId: 'r-1:n-1:upgrade',
      rolloutId: 'r-1',
      image: { type: 'oci', reference: 'registry.example/os:2.0.0', digest, version: '2.0.0' },
      manifestDigest: digest,
      healthChecks: ['api'],
    },
    {
      ...base,
      nonce: nonce(),
      type: 'Rollback',
      commandId: 'r-1:n-1:rollback',
      rolloutId: 'r-1',
      toVersion: '1.0.0',
    },
    { ...base, nonce: nonce(), type: 'Cancel', commandId: 'r-1:n-1:cancel', rolloutId: 'r-1' },
    {
      ...base,
      nonce: nonce(),
      type: 'RevokeKey',
      commandId: 'k-1:n-1:revoke',
      revokeKeyId: '0123456789abcdef',
    },
  ];
}
const valid: SignedCommand[] = commands(newNonce).map((c) => signCommand(c, key));

const status: SlotStatus = {
  booted: 'a',
  primary: 'a',
  trial: false,
  slots: { a: { version: '1.0.0', digest: `sha256:${'01'.repeat(32)}` }, b: { version: '1.0.0' } },
};
const decisionContext = (): DecisionContext => ({
  journal: emptyJournal(new Date(NOW)),
  status: async () => status,
  accepts: ['oci', 'file'],
  healthChecks: ['api'],
  initialVersion: '0.0.0',
  now: new Date(NOW),
  floor: undefined,
  keys: { trusted: new Set(trusted.keys()), revoked: new Set() },
});

const signedCommandInput = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom(...valid).chain((s) => mutationsOf(s).map((m) => ({ from: s, ...m }))),
  },
  { weight: 1, arbitrary: randomJson.map((value) => ({ from: undefined, value, mutations: [] })) },
);

test('fuzz - a mutated signed command is refused with a reason, never accepted changed, never burns a nonce', async () => {
  await fuzz('commands', signedCommandInput, async ({ from, value, mutations }) => {
    // A fresh store per case, shared by the mutated and the untouched command.
    const nonces = createMemoryNonceStore(() => NOW);
    const ctx = { trustedKeys: trusted, nodeId: 'n-1', nonces, now: new Date(NOW) };
    const v = await verifyCommand(value, ctx);
    if (v.ok) {
      // Only a change the signature does not cover (an unknown field dropped by the schema, a
      // default spelled out) may pass, and then the command is exactly the signed one.
      assert.ok(from, 'random JSON verified as a signed command');
      assert.equal(canonicalJson(v.command), canonicalJson(from.command));
    } else {
      assert.ok(v.message.length > 0, 'a refusal says why');
      if (v.reason === 'malformed') {
        assert.match(v.message, /got /, 'a malformed refusal says what came');
        assertNamesField(v.message, mutations, 'command');
      }
      // The decision on a refusal is a refusal with the same reason, whatever was in the input.
      const d = await decide(v, decisionContext());
      assert.equal(d.kind === 'reject' ? d.reason : d.kind, v.reason);
      if (['malformed', 'unknown-key', 'bad-signature'].includes(v.reason)) {
        assert.equal(
          d.kind === 'reject' ? d.command : undefined,
          undefined,
          'unverified ids must not steer workflows',
        );
      }
    }
    if (from && !v.ok) {
      const again = await verifyCommand(from, ctx);
      assert.ok(
        again.ok,
        `the untouched command no longer verifies after a refused copy: ${again.ok ? '' : again.message}`,
      );
    }
  });
});

test('fuzz - a verified command always gets a decision, not an exception', async () => {
  // Signed commands with random content where the schema allows it: the decision must handle them all.
  const arb = fc.record({
    which: fc.nat({ max: 2 }),
    version: fc.oneof(
      fc.constantFrom('0.0.1', '1.0.0', '2.0.0', '10.0.0-rc.1', '1.0.0+b'),
      fc.string({ minLength: 1, maxLength: 10 }),
    ),
    toVersion: fc.option(fc.string({ minLength: 1, maxLength: 10 }), { nil: undefined }),
    checks: fc.array(fc.constantFrom('api', 'disk', ''), { maxLength: 3 }),
    allowDowngrade: fc.boolean(),
    busy: fc.boolean(),
  });
  await fuzz('command-decision', arb, async (c) => {
    const [upgrade, rollback, cancel] = commands(newNonce) as [
      AnyCommandInput,
      AnyCommandInput,
      AnyCommandInput,
    ];
    const input =
      c.which === 0
        ? {
            ...upgrade,
            image: { type: 'oci', reference: 'r/os:x', digest, version: c.version },
            healthChecks: c.checks,
            allowDowngrade: c.allowDowngrade,
          }
        : c.which === 1
          ? { ...rollback, toVersion: c.toVersion, allowDowngrade: c.allowDowngrade }
          : cancel;
    let signed: SignedCommand;
    try {
      signed = signCommand(input as AnyCommandInput, key);
    } catch {
      return; // the schema refuses it before signing; nothing to decide
    }
    const v = await verifyCommand(signed, {
      trustedKeys: trusted,
      nodeId: 'n-1',
      nonces: createMemoryNonceStore(() => NOW),
      now: new Date(NOW),
    });
    assert.ok(v.ok, v.ok ? '' : v.message);
    const journal = emptyJournal(new Date(NOW));
    if (c.busy) journal.state = 'fetching';
    const d = await decide(v, { ...decisionContext(), journal });
    if (d.kind === 'reject') assert.ok(d.message.length > 0);
  });
});

const plan = testPlan(key, 'r-plan', [['n-1', 'n-2'], ['n-3']]);

test('fuzz - a mutated signed plan is refused naming the field, or is exactly the signed plan', async () => {
  const arb = fc.oneof(
    { weight: 8, arbitrary: mutationsOf(plan) },
    { weight: 1, arbitrary: randomJson.map((value) => ({ value, mutations: [] })) },
  );
  await fuzz('plans', arb, ({ value, mutations }) => {
    const v = verifyPlan(value, { trustedKeys: trusted });
    const relayed = checkRelayedPlan(value, { trustedKeys: trusted, now: Date.now, clockSkewMs: 60_000 });
    assert.equal(relayed.type === 'accept', v.ok, 'relay and agent agree on a plan');
    if (v.ok) {
      assert.equal(canonicalJson(v.plan), canonicalJson(plan.plan));
      return;
    }
    assert.ok(v.message.length > 0);
    if (v.reason === 'malformed') assertNamesField(v.message, mutations, 'plan');
  });
});

test('fuzz - a relay accepts only commands a trusted key signed, unchanged', async () => {
  const arb = fc.constantFrom(...valid).chain((s) => inputsLike(s).map((value) => ({ s, value })));
  await fuzz('relayed-commands', arb, ({ s, value }) => {
    // As the gossip topic does: the schema first, then the relay's signature and freshness check.
    const parsed = CommandGossip.safeParse({ v: 1, type: 'command', signed: value });
    if (!parsed.success || parsed.data.type !== 'command') return;
    const verdict = checkRelayedCommand(parsed.data.signed, {
      trustedKeys: trusted,
      now: () => NOW,
      clockSkewMs: 60_000,
    });
    if (verdict.type === 'accept')
      assert.equal(canonicalJson(verdict.value.command), canonicalJson(s.command));
    else assert.ok(verdict.reason.length > 0);
  });
});
