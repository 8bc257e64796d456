-- Account actors decide every debit of an available balance (milestone funding, arbitration
-- fees, withdrawals); the worker posts what they decided.

-- decided_debits: the sum of the debits decided by account actors that the worker has met on
-- the stream for this account (posted, or skipped as a repeat of an event id or a reused
-- reference). An actor's conservative view is balance - (its running total - decided_debits).
ALTER TABLE accounts ADD COLUMN decided_debits numeric NOT NULL DEFAULT 0 CHECK (decided_debits >= 0);

-- A reservation funds one milestone: the amount plus the employer fee, taken from available
-- and held in an account of its own ('reservation:<reservation id>', owned by the employer)
-- until the milestone's first event consumes it, or the sweep gives it back.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('available', 'escrow', 'arbitration', 'reservation', 'revenue', 'world'));
CREATE INDEX accounts_open_reservations ON accounts (account_id) WHERE kind = 'reservation' AND balance > 0;

-- reserve: available -> reservation; unreserve: reservation -> available.
ALTER TABLE postings DROP CONSTRAINT postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check CHECK (kind IN ('hold', 'release', 'return', 'settle', 'fee_hold', 'deposit', 'withdrawal', 'reserve', 'unreserve'));
