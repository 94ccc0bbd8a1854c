/** A value that cannot be encoded canonically (undefined, a function, a non-finite number, …). */
export class CanonicalEncodingError extends Error {
  override name = 'CanonicalEncodingError';
}

function encode(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value))
        throw new CanonicalEncodingError(`${path}: expected a finite number, got ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v, i) => encode(v, `${path}[${i}]`)).join(',')}]`;
      const keys = Object.keys(value as object)
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .sort();
      const body = keys.map(
        (k) => `${JSON.stringify(k)}:${encode((value as Record<string, unknown>)[k], `${path}.${k}`)}`,
      );
      return `{${body.join(',')}}`;
    }
    default:
      throw new CanonicalEncodingError(`${path}: expected JSON data, got a ${typeof value}`);
  }
}

/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, undefined members dropped.
 * Signer and verifier must produce the same bytes for the same data, whatever the key order.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, '$');
}

/** Canonical JSON as UTF-8 bytes, the input of signatures and digests. */
export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(value));
}
