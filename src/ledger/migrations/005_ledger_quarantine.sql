-- Messages of the stream the ledger could not apply, moved aside instead of stopping every
-- posting behind them: not signed by this deployment, not a CloudEvent, from another source,
-- or an event whose posting would break an invariant (an unknown milestone, a balance below
-- zero). The cursor moves past them; `npm run quarantine` lists them, and replays or drops
-- each once a person has looked. Unresolved rows are reported by the auditor.
CREATE TABLE ledger_quarantine (
  stream_seq     bigint PRIMARY KEY,
  subject        text NOT NULL,
  event_id       text,
  event_type     text,
  reason         text NOT NULL,
  detail         text NOT NULL,
  signed         boolean NOT NULL,
  payload        text NOT NULL,
  quarantined_at timestamptz NOT NULL DEFAULT now(),
  resolution     text CHECK (resolution IN ('replayed', 'dropped')),
  resolved_at    timestamptz,
  resolved_note  text
);
CREATE INDEX ledger_quarantine_open ON ledger_quarantine (stream_seq) WHERE resolution IS NULL;

-- Events are signed from this version on. A deployment that ran an earlier version has
-- unsigned events of its own in the stream: those before `since_seq` (the stream's next
-- sequence when a process of this version first started) are trusted as they were.
CREATE TABLE event_signing (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  since_seq bigint NOT NULL
);
