import { resolve } from 'node:path';
import { RaucBundleRequest } from '../schema/index.ts';
import { UsageError } from './usage-error.ts';

const RAUC_FLAGS = [
  'rauc-compatible',
  'rauc-cert',
  'rauc-key',
  'rauc-intermediate',
  'rauc-bundle-format',
] as const;

/** The --rauc-* flags, for `parseFlags`. */
export const RAUC_FLAG_OPTIONS = {
  'rauc-compatible': { type: 'string' },
  'rauc-cert': { type: 'string' },
  'rauc-key': { type: 'string' },
  'rauc-intermediate': { type: 'string' },
  'rauc-bundle-format': { type: 'string' },
} as const;

/** The RAUC bundle to wrap the image in (`--format rauc`), from the --rauc-* flags. */
export function raucRequest(
  format: string,
  values: Partial<Record<(typeof RAUC_FLAGS)[number], string | undefined>>,
  usage: string,
): RaucBundleRequest | undefined {
  if (format !== 'rauc') {
    const stray = RAUC_FLAGS.filter((f) => values[f] !== undefined);
    if (stray.length > 0)
      throw new UsageError(`--${stray[0]} only applies to --format rauc, got --format ${format}`);
    return undefined;
  }
  const missing = (['rauc-compatible', 'rauc-cert', 'rauc-key'] as const).filter((f) => !values[f]);
  if (missing.length > 0) {
    throw new UsageError(
      `--format rauc signs a RAUC bundle: give ${missing.map((f) => `--${f}`).join(', ')} (the nodes' system.conf compatible, the signing certificate and key; 'slotflow keys rauc-init' makes a pair for trials)\nusage: ${usage}`,
    );
  }
  const parsed = RaucBundleRequest.safeParse({
    compatible: values['rauc-compatible'],
    cert: resolve(values['rauc-cert'] as string),
    key: resolve(values['rauc-key'] as string),
    ...(values['rauc-intermediate'] ? { intermediate: resolve(values['rauc-intermediate']) } : {}),
    ...(values['rauc-bundle-format'] ? { bundleFormat: values['rauc-bundle-format'] } : {}),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0]);
    const flag = RAUC_FLAGS.find((f) => f.replace(/^rauc-|-/g, '') === field.toLowerCase()) ?? 'format';
    throw new UsageError(`--${flag}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
