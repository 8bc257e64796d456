/**
 * Everything a deployment owns on NATS and in Postgres is named from one namespace
 * (ESCROW_NAMESPACE), so several deployments or test runs can share one server.
 */
export interface Names {
  readonly namespace: string;
  /** The JetStream stream: the namespace in upper case, e.g. ESCROW. */
  readonly stream: string;
  /** Every subject of the deployment: `<ns>.>`. */
  readonly allSubjects: string;
  /** The durable consumer earlier versions of the ledger used (its ack floor seeds the cursor on upgrade). */
  readonly ledgerConsumer: string;
  /** The Postgres schema of the ledger and read model. */
  readonly schema: string;
  /** CloudEvents `source` of everything this deployment publishes. */
  readonly source: string;
  milestone(id: string): string;
  project(id: string): string;
  account(userId: string): string;
  /** Where the ledger publishes the result of the event `causationId`. */
  outcome(causationId: string): string;
  /** Wildcard of all ledger outcomes. */
  readonly outcomes: string;
}

export function names(namespace: string): Names {
  return {
    namespace,
    stream: namespace.toUpperCase(),
    allSubjects: `${namespace}.>`,
    ledgerConsumer: `${namespace}_ledger`,
    schema: namespace,
    source: `urn:escrow:${namespace}`,
    milestone: (id) => `${namespace}.milestone.${id}`,
    project: (id) => `${namespace}.project.${id}`,
    account: (userId) => `${namespace}.account.${userId}`,
    outcome: (causationId) => `${namespace}.ledger.outcome.${causationId}`,
    outcomes: `${namespace}.ledger.outcome.>`,
  };
}
