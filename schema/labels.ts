import { z } from 'zod';

const KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^[A-Za-z0-9._-]{0,63}$/;

/** Node labels, e.g. `{ site: 'berlin', role: 'edge' }`. */
export const Labels = z.record(
  z.string().regex(KEY, 'expected a label key (letters, digits, ".-_/")'),
  z.string().regex(VALUE, 'expected a label value (up to 63 letters, digits, ".-_")'),
);
export type Labels = z.infer<typeof Labels>;

/** Parses `k=v,k2=v2` into labels; returns an error message when malformed. */
export function parseLabels(text: string): Labels | string {
  const labels: Labels = {};
  if (text.trim() === '') return labels;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return `'${part}' is not key=value`;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (!KEY.test(key)) return `'${key}' is not a valid label key`;
    if (!VALUE.test(value)) return `'${value}' is not a valid label value`;
    labels[key] = value;
  }
  return labels;
}

/** One requirement of a label selector. */
export const SelectorTerm = z.discriminatedUnion('op', [
  z.object({ op: z.literal('='), key: z.string(), value: z.string() }),
  z.object({ op: z.literal('!='), key: z.string(), value: z.string() }),
  z.object({ op: z.literal('exists'), key: z.string() }),
  z.object({ op: z.literal('!exists'), key: z.string() }),
]);
export type SelectorTerm = z.infer<typeof SelectorTerm>;

/** Parses `site=berlin,role!=db,gpu,!canary` into terms (all must match). */
export function parseSelector(text: string): SelectorTerm[] | string {
  const terms: SelectorTerm[] = [];
  if (text.trim() === '') return terms;
  for (const raw of text.split(',')) {
    const part = raw.trim();
    const m = /^(!?)([^=!]+?)(?:(!=|=)(.*))?$/.exec(part);
    if (!m || !KEY.test(m[2] ?? '')) return `'${part}' is not key=value, key!=value, key or !key`;
    const key = m[2] as string;
    if (m[3] === undefined) {
      terms.push({ op: m[1] ? '!exists' : 'exists', key });
    } else {
      if (m[1]) return `'${part}': '!' only negates a bare key`;
      const value = m[4] ?? '';
      if (!VALUE.test(value)) return `'${value}' is not a valid label value`;
      terms.push({ op: m[3] === '=' ? '=' : '!=', key, value });
    }
  }
  return terms;
}

/** A label selector as text or as terms. */
export const Selector = z.union([
  z.array(SelectorTerm),
  z.string().transform((text, ctx) => {
    const parsed = parseSelector(text);
    if (typeof parsed === 'string') {
      ctx.addIssue({
        code: 'custom',
        message: `expected a selector such as site=berlin,role!=db (${parsed})`,
      });
      return z.NEVER;
    }
    return parsed;
  }),
]);

/** True when the labels satisfy every term of the selector (an empty selector matches all). */
export function selectorMatches(terms: readonly SelectorTerm[], labels: Labels): boolean {
  return terms.every((t) => {
    const has = Object.hasOwn(labels, t.key);
    switch (t.op) {
      case '=':
        return has && labels[t.key] === t.value;
      case '!=':
        return !has || labels[t.key] !== t.value;
      case 'exists':
        return has;
      case '!exists':
        return !has;
    }
  });
}
