-- The read model's milestone rows carry what GetMilestone shows but the history: the state
-- name and the milestone's context (minus the decision slots) as JSON, merged event by event
-- from what each event carries (src/ledger/apply.ts). Rows written before this migration have
-- no context until ... never: the list reads those few from the event log instead.
ALTER TABLE milestones ADD COLUMN state text, ADD COLUMN context jsonb;
-- ListMilestones sorts by updated_at too.
CREATE INDEX milestones_by_employer_updated ON milestones (employer_id, updated_at DESC, milestone_id DESC);
CREATE INDEX milestones_by_freelancer_updated ON milestones (freelancer_id, updated_at DESC, milestone_id DESC);
