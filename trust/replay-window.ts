// Anti-replay for signed node events, as IPsec does it (RFC 4303 §3.4.3): each node numbers its
// events; the verifier remembers the highest number it accepted and which of the WINDOW numbers
// below it it has seen. Peer relays and outbox drains may deliver a node's events out of order,
// so a late event inside the window is still accepted once; a repeat, or one older than the
// window, is a replay. Unlike the stream's de-duplication by Nats-Msg-Id, this holds forever.

/** How far below the highest accepted number a late event is still accepted. */
export const REPLAY_WINDOW = 1024;

/** What the verifier remembers of one node's numbers (plain data: it is stored with the projection). */
export interface ReplayWindow {
  /** Highest number accepted so far (0: none yet). */
  readonly top: number;
  /** Bit i set: number `top - i` was accepted; hex of a bigint, bit 0 is `top` itself. */
  readonly seen: string;
}

/** The window of a node that has sent nothing yet. */
export const EMPTY_WINDOW: ReplayWindow = { top: 0, seen: '0' };

const MASK = (1n << BigInt(REPLAY_WINDOW)) - 1n;

/** Why a number is refused, or the window after accepting it. */
export type WindowCheck =
  | { readonly ok: true; readonly window: ReplayWindow }
  | {
      readonly ok: false;
      /** `repeat`: this very number was accepted before; `stale`: below the window; `invalid`: not a number. */
      readonly why: 'repeat' | 'stale' | 'invalid';
      readonly message: string;
    };

/** Pure: accepts `seq` into the window once, or says why it is a replay. */
export function acceptSeq(window: ReplayWindow, seq: number): WindowCheck {
  if (!Number.isSafeInteger(seq) || seq < 1) {
    return { ok: false, why: 'invalid', message: `event number ${seq} is not a positive integer` };
  }
  const seen = BigInt(`0x${window.seen}`);
  if (seq > window.top) {
    const shift = BigInt(Math.min(seq - window.top, REPLAY_WINDOW + 1));
    const next = ((seen << shift) | 1n) & MASK;
    return { ok: true, window: { top: seq, seen: next.toString(16) } };
  }
  const age = window.top - seq;
  if (age >= REPLAY_WINDOW) {
    return {
      ok: false,
      why: 'stale',
      message: `event number ${seq} is older than the replay window (highest accepted ${window.top}, window ${REPLAY_WINDOW})`,
    };
  }
  const bit = 1n << BigInt(age);
  if ((seen & bit) !== 0n) {
    return {
      ok: false,
      why: 'repeat',
      message: `event number ${seq} was already accepted (highest accepted ${window.top})`,
    };
  }
  return { ok: true, window: { top: window.top, seen: (seen | bit).toString(16) } };
}
