/** Where an agent's commands and events flow. */
export const Mode = { nats: 'nats', p2p: 'p2p' } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

/** A mode change, for the agent to journal as a NodeModeChanged event. */
export interface ModeChange {
  readonly mode: Mode;
  readonly previous: Mode;
  readonly reason: string;
  readonly at: number;
}

/** The `nats` ↔ `p2p` state machine. */
export interface ModeSwitch {
  readonly mode: Mode;
  /** Feeds one observation: NATS was (or was not) reachable now. */
  observe(reachable: boolean): void;
  /**
   * The mode once it is known for sure: `nats` only after NATS was seen reachable (and is not
   * being lost), `p2p` once the switch happened. Before the first observation, and while the
   * grace after a loss runs, it waits: a node that just restarted without NATS must not act as if
   * the control plane coordinated it.
   */
  settled(signal?: AbortSignal): Promise<Mode>;
  stop(): void;
}

type State = 'nats' | 'nats-lost' | 'p2p';
type Input = 'reachable' | 'unreachable' | 'grace-expired';

// Transition table: state × input → next state. `nats-lost` is still NATS mode, with the grace
// timer running; only its expiry moves to p2p, so a blip shorter than the grace is not a switch.
const TRANSITIONS: Record<State, Partial<Record<Input, State>>> = {
  nats: { unreachable: 'nats-lost' },
  'nats-lost': { reachable: 'nats', 'grace-expired': 'p2p' },
  p2p: { reachable: 'nats' },
};

/**
 * Switches to p2p mode when NATS has been unreachable for `graceMs` without a break, and back
 * to nats mode at the first observation that it is reachable again (the outbox then drains).
 */
export function createModeSwitch(init: {
  graceMs: number;
  initial?: Mode;
  onChange: (change: ModeChange) => void;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}): ModeSwitch {
  const now = init.now ?? Date.now;
  const setTimer =
    init.setTimer ??
    ((fn: () => void, ms: number) => {
      const t = setTimeout(fn, ms);
      t.unref();
      return { cancel: () => clearTimeout(t) };
    });
  let state: State = init.initial === 'p2p' ? 'p2p' : 'nats';
  let lostAt = 0;
  // Whether NATS has been seen reachable since start; until then `nats` is only the default.
  let confirmed = init.initial === 'p2p';
  let timer: { cancel(): void } | undefined;
  const waiters = new Set<() => void>();
  const known = (): Mode | undefined =>
    state === 'p2p' ? 'p2p' : state === 'nats' && confirmed ? 'nats' : undefined;
  const wake = () => {
    if (known() === undefined) return;
    for (const w of [...waiters]) w();
  };
  const modeOf = (s: State): Mode => (s === 'p2p' ? 'p2p' : 'nats');

  function step(input: Input): void {
    const next = TRANSITIONS[state][input];
    if (next === undefined) return;
    const before = modeOf(state);
    if (next === 'nats-lost') {
      lostAt = now();
      timer = setTimer(() => {
        step('grace-expired');
        wake();
      }, init.graceMs);
    } else {
      timer?.cancel();
      timer = undefined;
    }
    state = next;
    const after = modeOf(next);
    if (after !== before) {
      const reason =
        after === 'p2p'
          ? `NATS unreachable for ${Math.round((now() - lostAt) / 1000)}s (grace ${Math.round(init.graceMs / 1000)}s)`
          : 'NATS reachable again';
      init.onChange({ mode: after, previous: before, reason, at: now() });
    }
  }

  return {
    get mode() {
      return modeOf(state);
    },
    observe(reachable) {
      if (reachable) confirmed = true;
      step(reachable ? 'reachable' : 'unreachable');
      wake();
    },
    settled(signal) {
      const now = known();
      if (now !== undefined) return Promise.resolve(now);
      return new Promise<Mode>((resolve, reject) => {
        const done = () => {
          waiters.delete(done);
          signal?.removeEventListener('abort', abort);
          resolve(known()!);
        };
        const abort = () => {
          waiters.delete(done);
          reject(signal?.reason ?? new Error('aborted'));
        };
        if (signal?.aborted) return abort();
        signal?.addEventListener('abort', abort, { once: true });
        waiters.add(done);
      });
    },
    stop() {
      timer?.cancel();
      timer = undefined;
    },
  };
}
