-- The ledger's position in the stream: the last stream sequence whose events are applied,
-- moved in the same transaction as the postings. One row. The active worker moves it with a
-- compare-and-set (from the position it read to the batch's last sequence), so even two
-- workers that both believed they held the lease could never both apply a batch, and every
-- account and milestone sees its events in stream order, whatever the number of workers.
CREATE TABLE ledger_cursor (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  stream_seq bigint NOT NULL CHECK (stream_seq >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ledger_cursor (stream_seq) VALUES (0);

-- Outcomes committed with their batch and not yet known to be published on NATS (a worker
-- killed between commit and publish): the next active worker publishes them first. Published
-- outcomes are deleted in the next batch's transaction.
CREATE TABLE ledger_outbox (
  causation_id text PRIMARY KEY,
  stream_seq   bigint NOT NULL,
  payload      jsonb NOT NULL
);
CREATE INDEX ledger_outbox_by_seq ON ledger_outbox (stream_seq);
