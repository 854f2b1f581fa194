-- Up Migration

-- Users authenticate with a bearer token; only its SHA-256 is stored, so a database dump leaks
-- no usable token.
CREATE TABLE users (
  id          bigserial PRIMARY KEY,
  name        text        NOT NULL,
  email       text        NOT NULL UNIQUE,
  token_hash  bytea       NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bots (
  id               bigserial PRIMARY KEY,
  user_id          bigint      NOT NULL REFERENCES users (id),
  name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
  strategy         text        NOT NULL,
  symbol           text        NOT NULL,
  stage            text        NOT NULL CHECK (stage IN ('draft', 'backtest', 'paper', 'live', 'paused', 'retired')),
  capital          numeric(14, 2) NOT NULL DEFAULT 10000,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  -- The client's Idempotency-Key of the POST that created the bot, and a hash of that request's
  -- body: the unique constraint (not a check-then-insert) is what makes a retried create safe.
  idempotency_key  text,
  request_hash     bytea,
  CONSTRAINT bots_user_idempotency_key UNIQUE (user_id, idempotency_key)
);
-- Keyset pages: (updated_at, id) descending, per user and stage, per user, and across users.
CREATE INDEX bots_user_stage_updated ON bots (user_id, stage, updated_at DESC, id DESC);
CREATE INDEX bots_user_updated ON bots (user_id, updated_at DESC, id DESC);
CREATE INDEX bots_updated ON bots (updated_at DESC, id DESC);
CREATE INDEX bots_stage_updated ON bots (stage, updated_at DESC, id DESC);

CREATE TABLE bot_instances (
  id                 bigserial PRIMARY KEY,
  bot_id             bigint      NOT NULL REFERENCES bots (id),
  is_primary_runner  boolean     NOT NULL DEFAULT false,
  status             text        NOT NULL CHECK (status IN ('starting', 'running', 'stopped', 'crashed')),
  host               text        NOT NULL,
  started_at         timestamptz NOT NULL DEFAULT now(),
  last_tick_at       timestamptz,
  position           numeric(14, 4) NOT NULL DEFAULT 0,
  unrealized_pnl     numeric(14, 2) NOT NULL DEFAULT 0
);
CREATE INDEX bot_instances_bot_primary_tick ON bot_instances (bot_id, is_primary_runner, last_tick_at DESC);

CREATE TABLE backtest_sessions (
  id            bigserial PRIMARY KEY,
  bot_id        bigint      NOT NULL REFERENCES bots (id),
  created_at    timestamptz NOT NULL DEFAULT now(),
  period_days   integer     NOT NULL,
  trades        integer     NOT NULL,
  pnl           numeric(14, 2) NOT NULL,
  sharpe        numeric(8, 3)  NOT NULL,
  max_drawdown  numeric(6, 4)  NOT NULL
);
CREATE INDEX backtest_sessions_bot_created ON backtest_sessions (bot_id, created_at DESC);

CREATE TABLE execution_audits (
  id          bigserial PRIMARY KEY,
  bot_id      bigint      NOT NULL REFERENCES bots (id),
  checked_at  timestamptz NOT NULL DEFAULT now(),
  kind        text        NOT NULL,
  ok          boolean     NOT NULL,
  latency_ms  integer     NOT NULL,
  detail      text
);
CREATE INDEX execution_audits_bot_checked ON execution_audits (bot_id, checked_at DESC);

-- Down Migration
DROP TABLE execution_audits;
DROP TABLE backtest_sessions;
DROP TABLE bot_instances;
DROP TABLE bots;
DROP TABLE users;
