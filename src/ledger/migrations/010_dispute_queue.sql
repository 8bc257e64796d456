-- ListDisputes: the open disputes of a stage, longest unchanged first.
CREATE INDEX milestones_disputes ON milestones (dispute_stage, updated_at, milestone_id) WHERE dispute_stage <> '';
