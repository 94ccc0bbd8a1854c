/** Remembers used nonces until their commands expire, so a captured command cannot be replayed. */
export interface NonceStore {
  /** Records the nonce; false when it was already recorded (a replay). */
  claim(nonce: string, expiresAtMs: number): Promise<boolean>;
}

/** Nonces kept in memory; expired ones are forgotten as new ones arrive. */
export function createMemoryNonceStore(now: () => number = Date.now): NonceStore & { size(): number } {
  const seen = new Map<string, number>();
  return {
    async claim(nonce, expiresAtMs) {
      const t = now();
      for (const [n, exp] of seen) if (exp < t) seen.delete(n);
      if (seen.has(nonce)) return false;
      seen.set(nonce, expiresAtMs);
      return true;
    },
    size: () => seen.size,
  };
}
