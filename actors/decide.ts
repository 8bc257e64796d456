import { transition, type AnyStateMachine, type EventObject } from 'xstate';
import type { DecisionSlots, Emitted, Rejection } from './decision.js';

/** A machine's position: the state name and its context, as stored in every event. */
export interface Position<C> {
  readonly state: string;
  readonly context: C;
}

export type Decision<C> =
  | { readonly kind: 'rejected'; readonly rejection: Rejection }
  | { readonly kind: 'accepted'; readonly next: Position<C>; readonly emitted: Emitted }
  /** Legal, but changes nothing (e.g. a party check that passes): nothing to append. */
  | { readonly kind: 'unchanged' };

/**
 * Decides one command with xstate's pure `transition`: no actor is started, nothing is
 * executed. The decision slots are cleared before and after, so they never reach the log.
 * `permission`, when the kind has one, is asked first: the machine keeps the state rules.
 */
export function decide<C extends DecisionSlots, E extends EventObject = EventObject>(
  machine: AnyStateMachine,
  at: Position<C>,
  event: E,
  permission?: (at: Position<C>, event: E) => Rejection | null,
): Decision<C> {
  const refused = permission?.(at, event);
  if (refused) return { kind: 'rejected', rejection: refused };
  const snapshot = machine.resolveState({
    value: at.state,
    context: { ...at.context, rejection: null, emitted: null },
  });
  const [next] = transition(machine, snapshot, event);
  const context = next.context as C;
  if (context.rejection) return { kind: 'rejected', rejection: context.rejection };
  if (!context.emitted) return { kind: 'unchanged' };
  return {
    kind: 'accepted',
    emitted: context.emitted,
    next: { state: String(next.value), context: { ...context, rejection: null, emitted: null } },
  };
}
