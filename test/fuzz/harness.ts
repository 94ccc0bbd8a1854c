// Shared runner and arbitraries of the fuzz suite. Every surface that reads bytes from outside
// the process runs through `fuzz()`: fast-check with shrinking, the case count from
// SLOTFLOW_FUZZ_CASES (small by default, so the suite stays quick; `npm run soak -- fuzz` raises
// it), one seed per run from SLOTFLOW_FUZZ_SEED or a random one. A failure throws fast-check's
// report (seed, path and the shrunk counterexample), so `node --test` prints what reproduces it,
// and every run is appended to SLOTFLOW_FUZZ_REPORT (JSON lines) when that is set.
import { appendFileSync } from 'node:fs';
import fc from 'fast-check';

/** Cases per surface: the CI sample unless the soak asks for more. */
export const FUZZ_CASES = positiveInt('SLOTFLOW_FUZZ_CASES', 40);

/** The seed of this run: given (to replay a failure) or drawn once per process. */
export const FUZZ_SEED = process.env['SLOTFLOW_FUZZ_SEED']
  ? Number(process.env['SLOTFLOW_FUZZ_SEED'])
  : (Math.random() * 2 ** 31) | 0;

/** With SLOTFLOW_FUZZ_PATH (from a failure report) fast-check replays exactly that case. */
const FUZZ_PATH = process.env['SLOTFLOW_FUZZ_PATH'] || undefined;

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`${name}: expected a positive whole number, got '${raw}'`);
  return n;
}

/** One surface's outcome, as the soak report lists it. */
export interface SurfaceResult {
  readonly surface: string;
  readonly cases: number;
  readonly failures: number;
  readonly seed: number;
  readonly ms: number;
  readonly path?: string;
  readonly counterexample?: string;
  readonly error?: string;
}

function record(result: SurfaceResult): void {
  const file = process.env['SLOTFLOW_FUZZ_REPORT'];
  if (file) appendFileSync(file, `${JSON.stringify(result)}\n`);
}

/**
 * Checks `property` on `cases` values of `arb` (default FUZZ_CASES), shrinking a failure to the
 * smallest input; throws with the seed and path that replay it
 * (`SLOTFLOW_FUZZ_SEED=<seed> SLOTFLOW_FUZZ_PATH=<path>`).
 */
export async function fuzz<T>(
  surface: string,
  arb: fc.Arbitrary<T>,
  property: (value: T) => Promise<void> | void,
  options: { cases?: number } = {},
): Promise<void> {
  const cases = options.cases ?? FUZZ_CASES;
  const started = Date.now();
  const details = await fc.check(
    fc.asyncProperty(arb, async (v) => {
      await property(v);
    }),
    {
      numRuns: cases,
      seed: FUZZ_SEED,
      ...(FUZZ_PATH ? { path: FUZZ_PATH } : {}),
      endOnFailure: false,
    },
  );
  const ms = Date.now() - started;
  if (!details.failed) {
    record({ surface, cases: details.numRuns, failures: 0, seed: FUZZ_SEED, ms });
    return;
  }
  const message = fc.defaultReportMessage(details) ?? 'property failed';
  record({
    surface,
    cases: details.numRuns,
    failures: 1,
    seed: details.seed,
    ms,
    path: details.counterexamplePath ?? '',
    counterexample: fc.stringify(details.counterexample).slice(0, 2000),
    error:
      details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance),
  });
  throw new Error(
    `${surface}: ${message}\nreplay: SLOTFLOW_FUZZ_SEED=${details.seed} SLOTFLOW_FUZZ_PATH=${details.counterexamplePath ?? ''}`,
    { cause: details.errorInstance },
  );
}

// ---- arbitraries ------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A path into a JSON document. */
export type JsonPath = (string | number)[];

/** Every path in a JSON document (the root included). */
export function pathsOf(value: unknown, prefix: JsonPath = []): JsonPath[] {
  const out: JsonPath[] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...prefix, i])));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...prefix, k]));
  }
  return out;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function getAt(doc: unknown, path: JsonPath): unknown {
  let cur = doc;
  for (const key of path) cur = (cur as Record<string | number, unknown>)[key];
  return cur;
}

/** What one mutation did, so a property can check that a rejection names the field. */
export interface Mutation {
  readonly kind: 'drop' | 'replace' | 'add' | 'truncate' | 'retype' | 'tweak';
  readonly path: JsonPath;
}

/** A mutated copy of a valid message and what was changed in it. */
export interface Mutated {
  readonly value: unknown;
  readonly mutations: readonly Mutation[];
}

/** A value of a different JSON type than `v` (same value type is possible for `replace`). */
function retyped(v: unknown): fc.Arbitrary<Json> {
  const options: fc.Arbitrary<Json>[] = [];
  if (typeof v !== 'string') options.push(fc.string({ maxLength: 20 }));
  if (typeof v !== 'number') options.push(fc.oneof(fc.integer(), fc.double()) as fc.Arbitrary<Json>);
  if (typeof v !== 'boolean') options.push(fc.boolean());
  if (v !== null) options.push(fc.constant(null));
  if (!Array.isArray(v))
    options.push(fc.array(fc.jsonValue({ maxDepth: 1 }) as fc.Arbitrary<Json>, { maxLength: 3 }));
  if (v === null || typeof v !== 'object' || Array.isArray(v)) options.push(fc.constant({}));
  return fc.oneof(...options);
}

const edgeStrings = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  '../../etc/passwd',
  'a'.repeat(5000),
  '__proto__',
  'constructor',
  '💥',
  '\ud800',
  '2026-13-45T99:99:99Z',
  'sha256:',
  'NaN',
  '-1',
  '1e309',
);

/** One mutation of `doc` (a fresh copy is changed and returned). */
function mutationOf(doc: unknown): fc.Arbitrary<Mutated> {
  const paths = pathsOf(doc);
  return fc
    .record({
      at: fc.nat({ max: paths.length - 1 }),
      kind: fc.constantFrom('drop', 'replace', 'add', 'truncate', 'retype', 'retype', 'tweak', 'tweak'),
      seed: fc.nat(),
    })
    .chain(({ at, kind }) => {
      const path = paths[at]!;
      const current = getAt(doc, path);
      const parentPath = path.slice(0, -1);
      const key = path[path.length - 1];
      const build = (next: (copy: unknown) => unknown, m: Mutation): Mutated => {
        const copy = clone(doc);
        return { value: next(copy), mutations: [m] };
      };
      const setAt = (copy: unknown, value: unknown): unknown => {
        if (key === undefined) return value;
        (getAt(copy, parentPath) as Record<string | number, unknown>)[key] = value;
        return copy;
      };
      switch (kind) {
        case 'drop':
          if (key === undefined) return fc.constant({ value: undefined, mutations: [{ kind, path }] });
          return fc.constant(
            build(
              (copy) => {
                const parent = getAt(copy, parentPath);
                if (Array.isArray(parent)) parent.splice(key as number, 1);
                else delete (parent as Record<string, unknown>)[key];
                return copy;
              },
              { kind, path },
            ),
          );
        case 'add':
          if (current === null || typeof current !== 'object') {
            return retyped(current).map((v) => build((copy) => setAt(copy, v), { kind: 'retype', path }));
          }
          return fc
            .tuple(
              fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), edgeStrings),
              fc.jsonValue({ maxDepth: 2 }),
            )
            .map(([k, v]) =>
              build(
                (copy) => {
                  const target = getAt(copy, path);
                  if (Array.isArray(target)) target.push(v);
                  else (target as Record<string, unknown>)[k] = v;
                  return copy;
                },
                { kind, path: Array.isArray(current) ? [...path, current.length] : [...path, k] },
              ),
            );
        case 'truncate':
          if (typeof current === 'string' && current.length > 0) {
            return fc
              .nat({ max: current.length - 1 })
              .map((n) => build((copy) => setAt(copy, current.slice(0, n)), { kind, path }));
          }
          if (typeof current === 'number') {
            return fc
              .constantFrom(-current, current + 0.5, -1, 2 ** 53, Number.MAX_VALUE)
              .map((n) => build((copy) => setAt(copy, n), { kind: 'replace', path }));
          }
          return retyped(current).map((v) => build((copy) => setAt(copy, v), { kind: 'retype', path }));
        case 'tweak':
          // One character swapped for another of the same string: the format (hex, base64, an
          // id) usually survives, so the change reaches the checks behind the schema.
          if (typeof current === 'string' && current.length > 1) {
            return fc
              .tuple(fc.nat({ max: current.length - 1 }), fc.nat({ max: current.length - 1 }))
              .map(([i, j]) => {
                const other =
                  current[j] !== current[i] ? current[j]! : String.fromCharCode(current.charCodeAt(i) ^ 1);
                return build((copy) => setAt(copy, current.slice(0, i) + other + current.slice(i + 1)), {
                  kind,
                  path,
                });
              });
          }
          if (typeof current === 'number') {
            return fc
              .integer({ min: -3, max: 3 })
              .filter((d) => d !== 0)
              .map((d) => build((copy) => setAt(copy, current + d), { kind, path }));
          }
          return fc.constant(build((copy) => copy, { kind, path }));
        case 'replace':
          return fc
            .oneof(fc.jsonValue({ maxDepth: 2 }), edgeStrings)
            .map((v) => build((copy) => setAt(copy, v), { kind, path }));
        default:
          return retyped(current).map((v) => build((copy) => setAt(copy, v), { kind: 'retype', path }));
      }
    });
}

function within(path: JsonPath, outer: JsonPath): boolean {
  return outer.length <= path.length && outer.every((p, i) => path[i] === p);
}

/** Earlier changes inside a field that a later change replaced or dropped no longer exist. */
function supersede(earlier: readonly Mutation[], later: readonly Mutation[]): Mutation[] {
  const gone = later.filter((m) => m.kind !== 'add');
  return [...earlier.filter((e) => !gone.some((g) => within(e.path, g.path))), ...later];
}

/** One to three mutations of a valid message: dropped, added, retyped, truncated fields. */
export function mutationsOf(valid: unknown): fc.Arbitrary<Mutated> {
  const step = (m: Mutated): fc.Arbitrary<Mutated> =>
    m.value === undefined || m.value === null || typeof m.value !== 'object'
      ? fc.constant(m)
      : mutationOf(m.value).map((n) => ({ value: n.value, mutations: supersede(m.mutations, n.mutations) }));
  return fc.nat({ max: 2 }).chain((extra) => {
    let arb = mutationOf(valid);
    for (let i = 0; i < extra; i++) arb = arb.chain(step);
    return arb;
  });
}

/** Random JSON documents (what a fuzzer with no idea of the shape sends). */
export const randomJson: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 4 });

/** Bytes of a JSON encoding with some bytes flipped, cut short or extended. */
export function mangledBytes(valid: unknown): fc.Arbitrary<Uint8Array> {
  const bytes = new TextEncoder().encode(JSON.stringify(valid));
  return fc.oneof(
    fc.nat({ max: Math.max(0, bytes.length - 1) }).map((n) => bytes.slice(0, n)),
    fc
      .array(fc.tuple(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      })
      .map((flips) => {
        const copy = bytes.slice();
        for (const [i, b] of flips) copy[i] = b;
        return copy;
      }),
    fc.uint8Array({ maxLength: 64 }).map((tail) => new Uint8Array([...bytes, ...tail])),
  );
}

/** Any input a peer could send: random bytes, random JSON, or a mutation of a valid message. */
export function inputsLike(valid: unknown): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: mutationsOf(valid).map((m) => m.value) },
    { weight: 2, arbitrary: randomJson },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => new TextDecoder().decode(b)),
    },
  );
}

/**
 * The field names a mutation touched: the rejection of a mutated message should name one of
 * them (the mutated field itself, or the object it sits in, e.g. for a missing field).
 */
export function touchedNames(mutations: readonly Mutation[]): string[] {
  const names = new Set<string>();
  for (const m of mutations) for (const p of m.path) if (typeof p === 'string') names.add(p);
  return [...names];
}

/** Asserts that a rejection message names at least one touched field, or says what the root was. */
export function assertNamesField(message: string, mutations: readonly Mutation[], what: string): void {
  // Once the whole document was replaced, later changes name fields of random data.
  if (mutations.some((m) => m.path.length === 0 && m.kind !== 'add')) return;
  const names = touchedNames(mutations);
  if (names.length === 0) return; // a change at the root or in an array element only
  if (names.some((n) => message.includes(n))) return;
  throw new Error(
    `${what}: the rejection names none of the changed fields (${names.join(', ')}): ${message}`,
  );
}
