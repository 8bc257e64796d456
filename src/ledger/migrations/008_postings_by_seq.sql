-- The worker checks, each time it takes the lease or starts its consumer over, that the log
-- still holds the last event it posted, at the sequence it posted it from (a replicated
-- stream can lose or rewrite its tail: see the README's scale-out section). This finds that
-- posting without reading the table.
CREATE INDEX postings_by_seq ON postings (stream_seq);
