-- The locking baseline's tables: the straightforward design, kept only as a comparator.
CREATE TABLE IF NOT EXISTS balances (
  user_id text NOT NULL, currency char(3) NOT NULL,
  available numeric NOT NULL DEFAULT 0 CHECK (available >= 0),
  held numeric NOT NULL DEFAULT 0 CHECK (held >= 0),
  incoming numeric NOT NULL DEFAULT 0 CHECK (incoming >= 0),
  PRIMARY KEY (user_id, currency)
);
CREATE TABLE IF NOT EXISTS deposits (reference text PRIMARY KEY, user_id text NOT NULL, amount numeric NOT NULL);
CREATE TABLE IF NOT EXISTS milestones (
  id uuid PRIMARY KEY, project_id text NOT NULL, employer_id text NOT NULL, freelancer_id text NOT NULL,
  currency char(3) NOT NULL, amount numeric NOT NULL, held numeric NOT NULL, released numeric NOT NULL DEFAULT 0,
  returned numeric NOT NULL DEFAULT 0, status text NOT NULL, version int NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS applied_keys (milestone_id uuid NOT NULL, key text NOT NULL, PRIMARY KEY (milestone_id, key));
