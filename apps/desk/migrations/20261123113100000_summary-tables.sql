-- Up Migration

-- Summary tables: written by background jobs (and, for counts, by the writes themselves), read by
-- the pages. Nothing on a page aggregates the big tables.

CREATE TABLE user_stage_counts (
  user_id     bigint      NOT NULL REFERENCES users (id),
  stage       text        NOT NULL,
  bot_count   integer     NOT NULL CHECK (bot_count >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, stage)
);

CREATE TABLE bot_performance (
  bot_id            bigint      PRIMARY KEY REFERENCES bots (id),
  user_id           bigint      NOT NULL,
  strategy          text        NOT NULL,
  sessions          integer     NOT NULL,
  total_pnl         numeric(16, 2) NOT NULL,
  avg_sharpe        numeric(8, 3)  NOT NULL,
  best_sharpe       numeric(8, 3)  NOT NULL,
  last_backtest_at  timestamptz,
  score             numeric(12, 4) NOT NULL,
  computed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_performance_user_pnl ON bot_performance (user_id, total_pnl DESC);
CREATE INDEX bot_performance_score ON bot_performance (score DESC, bot_id);

-- The latest audits of each user's bots, kept to a few dozen rows per user.
CREATE TABLE recent_audits (
  user_id     bigint      NOT NULL,
  audit_id    bigint      NOT NULL,
  bot_id      bigint      NOT NULL,
  bot_name    text        NOT NULL,
  checked_at  timestamptz NOT NULL,
  kind        text        NOT NULL,
  ok          boolean     NOT NULL,
  latency_ms  integer     NOT NULL,
  PRIMARY KEY (user_id, audit_id)
);
CREATE INDEX recent_audits_user_checked ON recent_audits (user_id, checked_at DESC);

CREATE TABLE equity_curves (
  bot_id       bigint      NOT NULL REFERENCES bots (id),
  day          date        NOT NULL,
  equity       numeric(16, 2) NOT NULL,
  computed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bot_id, day)
);

CREATE TABLE strategy_scores (
  strategy     text        PRIMARY KEY,
  bots         integer     NOT NULL,
  avg_sharpe   numeric(8, 3)  NOT NULL,
  avg_pnl      numeric(16, 2) NOT NULL,
  score        numeric(12, 4) NOT NULL,
  computed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tournament_ranking (
  rank         integer     PRIMARY KEY,
  bot_id       bigint      NOT NULL,
  user_id      bigint      NOT NULL,
  bot_name     text        NOT NULL,
  strategy     text        NOT NULL,
  score        numeric(12, 4) NOT NULL,
  computed_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per background loop: when it last ran, whether it succeeded, how long it took.
CREATE TABLE autonomy_heartbeats (
  loop              text        PRIMARY KEY,
  last_beat_at      timestamptz NOT NULL,
  last_ok_at        timestamptz,
  last_duration_ms  integer     NOT NULL,
  last_error_code   text,
  runs              bigint      NOT NULL DEFAULT 1,
  instance          text        NOT NULL
);

CREATE TABLE provider_health (
  provider      text        PRIMARY KEY,
  status        text        NOT NULL CHECK (status IN ('up', 'degraded', 'down')),
  latency_ms    integer,
  error_code    text,
  checked_at    timestamptz NOT NULL,
  last_up_at    timestamptz
);

-- Small global figures (bots by stage, totals), one JSON document per key.
CREATE TABLE metrics_summary (
  key          text        PRIMARY KEY,
  value        jsonb       NOT NULL,
  computed_at  timestamptz NOT NULL DEFAULT now()
);

-- Where each batched job resumes: jobs walk the big tables a bounded batch at a time.
CREATE TABLE job_cursors (
  job         text        PRIMARY KEY,
  last_id     bigint      NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE job_cursors;
DROP TABLE metrics_summary;
DROP TABLE provider_health;
DROP TABLE autonomy_heartbeats;
DROP TABLE tournament_ranking;
DROP TABLE strategy_scores;
DROP TABLE equity_curves;
DROP TABLE recent_audits;
DROP TABLE bot_performance;
DROP TABLE user_stage_counts;
