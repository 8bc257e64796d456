-- The double-entry ledger. The worker is its only writer.

-- One row per account. Users have one available account per currency; every milestone has
-- an escrow account; the platform has a revenue account per currency; the outside world
-- (deposits come from it, withdrawals go to it) is the only account allowed below zero.
CREATE TABLE accounts (
  account_id text PRIMARY KEY,
  kind       text NOT NULL CHECK (kind IN ('available', 'escrow', 'revenue', 'world')),
  owner_id   text NOT NULL,
  currency   char(3) NOT NULL,
  balance    numeric NOT NULL DEFAULT 0,
  CONSTRAINT balance_not_negative CHECK (kind = 'world' OR balance >= 0)
);

-- One row per money event of the stream, keyed by the event id: applying an event twice
-- inserts nothing the second time. `result` is what the ledger decided.
CREATE TABLE postings (
  event_id     uuid PRIMARY KEY,
  stream_seq   bigint NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('hold', 'release', 'return', 'deposit', 'withdrawal')),
  result       text NOT NULL CHECK (result IN ('ok', 'insufficient_funds', 'reference_conflict')),
  milestone_id uuid,
  user_id      text,
  currency     char(3) NOT NULL,
  amount       numeric NOT NULL CHECK (amount > 0),
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- The legs of a posting, signed: the legs of one posting sum to zero.
CREATE TABLE entries (
  event_id   uuid NOT NULL REFERENCES postings (event_id),
  account_id text NOT NULL REFERENCES accounts (account_id),
  amount     numeric NOT NULL CHECK (amount <> 0),
  PRIMARY KEY (event_id, account_id)
);
CREATE INDEX entries_by_account ON entries (account_id, event_id);

-- The first use of each external reference. `reference` is scoped: `deposit:<ref>` (the
-- payments service's references, one namespace) or `withdrawal:<user>:<ref>` (each user's own),
-- so no user can claim a reference another user or the payments service will use.
CREATE TABLE external_references (
  reference text PRIMARY KEY,
  kind      text NOT NULL,
  user_id   text NOT NULL,
  currency  char(3) NOT NULL,
  amount    numeric NOT NULL,
  event_id  uuid NOT NULL
);

-- Read model, projected by the worker in the same transaction as the postings.

CREATE TABLE user_balances (
  user_id   text NOT NULL,
  currency  char(3) NOT NULL,
  available numeric NOT NULL DEFAULT 0 CHECK (available >= 0),
  held      numeric NOT NULL DEFAULT 0 CHECK (held >= 0),
  incoming  numeric NOT NULL DEFAULT 0 CHECK (incoming >= 0),
  PRIMARY KEY (user_id, currency)
);

CREATE TABLE milestones (
  milestone_id  uuid PRIMARY KEY,
  project_id    text NOT NULL,
  employer_id   text NOT NULL,
  freelancer_id text NOT NULL,
  currency      char(3) NOT NULL,
  amount        numeric NOT NULL,
  held          numeric NOT NULL CHECK (held >= 0),
  released      numeric NOT NULL CHECK (released >= 0),
  returned      numeric NOT NULL CHECK (returned >= 0),
  status        text NOT NULL,
  version       integer NOT NULL,
  description   text NOT NULL,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  CONSTRAINT conserved CHECK (status IN ('PENDING_FUNDING', 'FUNDING_FAILED') OR amount = held + released + returned)
);
CREATE INDEX milestones_by_employer ON milestones (employer_id, created_at DESC, milestone_id DESC);
CREATE INDEX milestones_by_freelancer ON milestones (freelancer_id, created_at DESC, milestone_id DESC);
