/**
 * Compares OS versions such as `1.4.2`, `v2.0.0-rc.1` or `24.04.3`: numeric parts numerically,
 * others as text, and a pre-release (`-rc.1`) before its release. Returns <0, 0 or >0.
 */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const clean = v.trim().replace(/^v/i, '').split('+')[0] ?? '';
    const dash = clean.indexOf('-');
    return dash < 0
      ? { main: clean, pre: undefined }
      : { main: clean.slice(0, dash), pre: clean.slice(dash + 1) };
  };
  const parts = (s: string) => s.split(/[.]/);
  const cmpPart = (x: string | undefined, y: string | undefined): number => {
    if (x === y) return 0;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x) ? Number(x) : undefined;
    const ny = /^\d+$/.test(y) ? Number(y) : undefined;
    if (nx !== undefined && ny !== undefined) return nx - ny;
    if (nx !== undefined) return -1;
    if (ny !== undefined) return 1;
    return x < y ? -1 : 1;
  };
  const va = split(a);
  const vb = split(b);
  const ma = parts(va.main);
  const mb = parts(vb.main);
  for (let i = 0; i < Math.max(ma.length, mb.length); i++) {
    const c = cmpPart(ma[i] ?? '0', mb[i] ?? '0');
    if (c !== 0) return c;
  }
  if (va.pre === vb.pre) return 0;
  if (va.pre === undefined) return 1;
  if (vb.pre === undefined) return -1;
  const pa = parts(va.pre);
  const pb = parts(vb.pre);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const c = cmpPart(pa[i], pb[i]);
    if (c !== 0) return c;
  }
  return 0;
}
