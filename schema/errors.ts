import type { z } from 'zod';

/** Input that does not match a schema; the message names each field, what came and what was expected. */
export class SchemaError extends Error {
  override name = 'SchemaError';
  /** One line per problem: `field: expected …, got …`. */
  readonly problems: readonly string[];
  constructor(what: string, problems: readonly string[], options?: { cause?: unknown }) {
    super(`invalid ${what}:\n  - ${problems.join('\n  - ')}`, options);
    this.problems = problems;
  }
}

function fieldName(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = input;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * For a union, the branch whose problems are not just "wrong type at the top" is the one the
 * input was meant for (a string given to a text-or-object field); report that branch's problems.
 */
function unionBranch(issue: z.core.$ZodIssueInvalidUnion): z.core.$ZodIssue[] | undefined {
  const meant = issue.errors.filter(
    (branch) => !branch.every((i) => i.code === 'invalid_type' && i.path.length === 0),
  );
  return meant.length === 1 ? meant[0] : undefined;
}

function flatten(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[]): z.core.$ZodIssue[] {
  const out: z.core.$ZodIssue[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union') {
      const branch = unionBranch(issue);
      if (branch) {
        out.push(...flatten(branch, path));
        continue;
      }
    }
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({
          ...issue,
          path: [...path, key],
          message: 'unknown field; remove it or check its spelling',
        });
      }
      continue;
    }
    out.push({ ...issue, path });
  }
  return out;
}

/** Turns zod issues into `field: message, got <value>` lines. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string[] {
  return flatten(issues, []).map((issue) => {
    const received = valueAt(input, issue.path);
    return `${fieldName(issue.path)}: ${issue.message}, got ${show(received)}`;
  });
}

/** Parses input with a schema, or throws a SchemaError naming every bad field. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new SchemaError(what, describeIssues(result.error.issues, input), { cause: result.error });
}
