-- Clearing (ESCROW_CLEARING_PERIOD): what a payout gives a freelancer waits in the user's
-- pending account until its clearing time, then the user's account actor clears it
-- (funds_cleared, a `clear` posting: pending -> available). `clearings` lists each payout
-- that went to pending, when it clears, and the clear that did it.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('available', 'escrow', 'arbitration', 'reservation', 'pending', 'revenue', 'world'));
ALTER TABLE postings DROP CONSTRAINT postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check CHECK (kind IN ('hold', 'release', 'return', 'settle', 'fee_hold', 'deposit', 'withdrawal', 'reserve', 'unreserve', 'clear'));
ALTER TABLE user_balances ADD COLUMN pending numeric NOT NULL DEFAULT 0 CHECK (pending >= 0);
CREATE TABLE clearings (
  event_id   uuid PRIMARY KEY,
  user_id    text NOT NULL,
  currency   char(3) NOT NULL,
  milestone_id uuid NOT NULL,
  amount     numeric NOT NULL CHECK (amount > 0),
  clears_at  timestamptz NOT NULL,
  cleared_by uuid
);
CREATE INDEX clearings_due ON clearings (clears_at) WHERE cleared_by IS NULL;
CREATE INDEX clearings_by_user ON clearings (user_id, currency) WHERE cleared_by IS NULL;
