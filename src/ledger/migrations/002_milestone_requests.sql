-- Milestone requests hold no money until accepted: their read-model rows are exempt from
-- amount = held + released + returned, like milestones still pending funding.
ALTER TABLE milestones DROP CONSTRAINT conserved;
ALTER TABLE milestones ADD CONSTRAINT conserved CHECK (
  status IN ('REQUESTED', 'REQUEST_REJECTED', 'REQUEST_WITHDRAWN', 'PENDING_FUNDING', 'FUNDING_FAILED')
  OR amount = held + released + returned
);
