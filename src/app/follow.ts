import type { Subscription } from '@nats-io/transport-node';
import { VERSION_HEADER, type EventLog } from '../events/log.js';
import { SIGNATURE_HEADER } from '../events/signing.js';

/**
 * Keeps resident actors current with changes made through other gateways: every signed
 * message on an entity's subjects tells its actor the version the log reached (it reloads
 * when behind), and a reconnect to NATS (which may have missed messages) invalidates all.
 * Returns what stops following.
 */
/** What following needs of a registry: its resident actors, to tell them what changed. */
interface Followed {
  peek(id: string): { observe(version: number): void; invalidate(): void } | null;
  invalidateAll(): void;
}

export function followChanges(log: EventLog, registries: readonly (readonly [entity: string, registry: Followed])[]): () => void {
  const subscriptions: Subscription[] = [];
  // Changes made through other gateways: resident actors that fall behind reload.
  const ns = log.names.namespace;
  for (const [entity, registry] of registries) {
    subscriptions.push(
      log.nc.subscribe(`${ns}.${entity}.>`, {
        callback: (err, msg) => {
          if (err) return;
          if (!log.verified(msg.subject, msg.data, msg.headers?.get(SIGNATURE_HEADER))) return;
          const actor = registry.peek(msg.subject.slice(ns.length + entity.length + 2));
          if (!actor) return;
          const version = Number(msg.headers?.get(VERSION_HEADER));
          if (Number.isInteger(version) && version > 0) actor.observe(version);
          else actor.invalidate();
        },
      }),
    );
  }
  void (async () => {
    for await (const s of log.nc.status()) {
      if (s.type === 'reconnect') {
        for (const [, registry] of registries) registry.invalidateAll();
      }
    }
  })();
  return () => {
    for (const sub of subscriptions) sub.unsubscribe();
  };
}
