-- Fees, disputes, timers and reviews.

-- Arbitration fees are held per milestone in an account of their own (owned by the payer).
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('available', 'escrow', 'arbitration', 'revenue', 'world'));

-- settle: a dispute's split out of escrow; fee_hold: an arbitration fee held.
-- fee: what of the posting went to the platform as a milestone fee (employer or freelancer fee);
-- freelancer_amount: what of it went to the freelancer, gross of the fee (release, settle).
ALTER TABLE postings DROP CONSTRAINT postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check CHECK (kind IN ('hold', 'release', 'return', 'settle', 'fee_hold', 'deposit', 'withdrawal'));
ALTER TABLE postings ADD COLUMN fee numeric NOT NULL DEFAULT 0 CHECK (fee >= 0);
ALTER TABLE postings ADD COLUMN freelancer_amount numeric NOT NULL DEFAULT 0 CHECK (freelancer_amount >= 0);

ALTER TABLE milestones ADD COLUMN employer_fee numeric NOT NULL DEFAULT 0;
ALTER TABLE milestones ADD COLUMN freelancer_fee numeric NOT NULL DEFAULT 0;
-- When a timer (dispute response deadline, auto-release) is due; the timers poll this index.
ALTER TABLE milestones ADD COLUMN due_at timestamptz;
ALTER TABLE milestones ADD COLUMN dispute_stage text NOT NULL DEFAULT '';
CREATE INDEX milestones_due ON milestones (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX milestones_by_project ON milestones (project_id) WHERE released > 0;

-- One review per reviewer per project, projected from escrow.review.submitted.v1.
CREATE TABLE reviews (
  project_id  text NOT NULL,
  reviewer_id text NOT NULL,
  reviewee_id text NOT NULL,
  rating      smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
  comment     text NOT NULL,
  event_id    uuid NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (project_id, reviewer_id)
);
CREATE INDEX reviews_by_reviewee ON reviews (reviewee_id, created_at DESC);
