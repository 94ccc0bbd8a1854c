import { TopicValidatorResult, type Message } from '@libp2p/gossipsub';
import type { Logger } from 'pino';
import { describeError } from '../errors.ts';
import type { P2pNode } from '../node.ts';
import type { PeerBindings } from './bindings.ts';

/** What a topic's check decides about one received message. */
export type Verdict<T> =
  | { readonly type: 'accept'; readonly value: T }
  /** Invalid: not delivered, not forwarded, and the forwarding peer's score drops. */
  | { readonly type: 'reject'; readonly reason: string }
  /** Not for us or stale: not delivered and not forwarded, but nobody is blamed. */
  | { readonly type: 'ignore'; readonly reason: string };

/** Counters of one topic, for metrics and tests. */
export interface TopicStats {
  published: number;
  accepted: number;
  rejected: number;
  ignored: number;
  /** Why the last message was rejected (for operators reading metrics or logs). */
  lastRejection?: string;
}

/** A gossip topic with a validating decoder: JSON in, checked values out. */
export interface TopicChannel {
  readonly topic: string;
  readonly stats: TopicStats;
  /** Publishes a value as JSON. */
  publish(value: unknown): Promise<void>;
  /** Starts validating and delivering; idempotent. */
  attach(): void;
  detach(): void;
}

/** The peer that authored a message (gossipsub verified its signature), as a string. */
export function authorOf(msg: Message): string | undefined {
  return msg.type === 'signed' ? msg.from.toString() : undefined;
}

/**
 * Wires one topic: every received message goes through `check` inside gossipsub's validation,
 * so a message that fails it is neither delivered nor propagated to other peers. A throwing
 * check counts as a rejection; nothing a peer sends can crash the agent.
 *
 * With `enrolled`, only enrolled nodes may author messages on the topic: a message whose author
 * no enrolment certificate vouches for is rejected before it is even parsed, and `check` gets the
 * node the author speaks for (`authorNode`) to compare with the node the message is about.
 */
export function createTopicChannel<T>(init: {
  node: P2pNode;
  topic: string;
  log: Logger;
  enrolled?: PeerBindings;
  check: (
    data: unknown,
    author: string,
    msg: Message,
    authorNode: string | undefined,
  ) => Verdict<T> | Promise<Verdict<T>>;
  deliver: (value: T, author: string) => void | Promise<void>;
}): TopicChannel {
  const { node, topic, log } = init;
  const pubsub = node.pubsub;
  const stats: TopicStats = { published: 0, accepted: 0, rejected: 0, ignored: 0 };
  const checked = new WeakMap<Message, T>();
  let attached = false;

  const authorNodeOf = async (author: string, via: string): Promise<Verdict<string | undefined>> => {
    if (!init.enrolled) return { type: 'accept', value: undefined };
    const vouch = await init.enrolled.vouch(author, via);
    switch (vouch.type) {
      case 'enrolled':
        return { type: 'accept', value: vouch.nodeId };
      case 'refused':
        return { type: 'reject', reason: vouch.reason };
      case 'unknown':
        return { type: 'ignore', reason: vouch.reason };
    }
  };

  const validator = async (from: { toString(): string }, msg: Message): Promise<TopicValidatorResult> => {
    const author = authorOf(msg);
    let verdict: Verdict<T>;
    try {
      if (author === undefined) throw new Error('expected a message signed by its author');
      const authorNode = await authorNodeOf(author, from.toString());
      if (authorNode.type !== 'accept') return settle(authorNode, msg, author);
      let data: unknown;
      try {
        data = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(msg.data));
      } catch (err) {
        throw new Error(`expected UTF-8 JSON: ${describeError(err)}`, { cause: err });
      }
      verdict = await init.check(data, author, msg, authorNode.value);
    } catch (err) {
      verdict = { type: 'reject', reason: describeError(err) };
    }
    return settle(verdict, msg, author);
  };

  function settle(
    verdict: Verdict<T> | Verdict<unknown>,
    msg: Message,
    author: string | undefined,
  ): TopicValidatorResult {
    switch (verdict.type) {
      case 'accept':
        stats.accepted++;
        checked.set(msg, verdict.value as T);
        return TopicValidatorResult.Accept;
      case 'ignore':
        stats.ignored++;
        log.debug({ topic, author, reason: verdict.reason }, 'gossip message ignored');
        return TopicValidatorResult.Ignore;
      case 'reject':
        stats.rejected++;
        stats.lastRejection = verdict.reason;
        log.warn({ topic, author, reason: verdict.reason }, 'gossip message rejected');
        return TopicValidatorResult.Reject;
    }
  }

  const onMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail;
    if (msg.topic !== topic) return;
    const value = checked.get(msg);
    const author = authorOf(msg);
    if (value === undefined || author === undefined) return;
    checked.delete(msg);
    Promise.resolve()
      .then(() => init.deliver(value, author))
      .catch((err: unknown) =>
        log.error({ topic, err: describeError(err) }, 'handler of a gossip message failed'),
      );
  };

  return {
    topic,
    stats,
    async publish(value) {
      await pubsub.publish(topic, new TextEncoder().encode(JSON.stringify(value)));
      stats.published++;
    },
    attach() {
      if (attached) return;
      attached = true;
      pubsub.topicValidators.set(topic, validator);
      pubsub.addEventListener('message', onMessage);
    },
    detach() {
      if (!attached) return;
      attached = false;
      pubsub.topicValidators.delete(topic);
      pubsub.removeEventListener('message', onMessage);
    },
  };
}
