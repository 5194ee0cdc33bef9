import FaultlinePostgres

/// The `experiments` schema, in the order it was built. Times are `bigint` microseconds since the
/// epoch (the wire's `_us`), so nothing is converted on the way in or out.
enum ExperimentSchema {
    static let name = "experiments"
    /// `NOTIFY` channel: one notification per stored batch or state change, payload
    /// `<execution id>:<highest stored sequence>`; watchers re-query, so a lost one costs latency only.
    static let channel = "faultline_experiment_events"

    static let migrations = Migrations(schema: name, [
        Migration(version: 1, name: "experiments and revisions", sql: """
            CREATE TABLE experiments (
                org             text   NOT NULL,
                id              text   NOT NULL,
                title           text   NOT NULL,
                description     text   NOT NULL DEFAULT '',
                tags            text[] NOT NULL DEFAULT '{}',
                latest_revision bigint NOT NULL,
                created_us      bigint NOT NULL,
                updated_us      bigint NOT NULL,
                deleted_us      bigint,
                actor_kind      int    NOT NULL DEFAULT 0,
                actor_id        text   NOT NULL DEFAULT '',
                request_id      text,
                PRIMARY KEY (org, id)
            );
            -- Lists walk newest first by (created_us, id): the keyset of the page token.
            CREATE INDEX experiments_by_created ON experiments (org, created_us DESC, id DESC);
            CREATE INDEX experiments_by_tag ON experiments USING gin (tags);
            CREATE UNIQUE INDEX experiments_request ON experiments (org, request_id) WHERE request_id IS NOT NULL;

            CREATE TABLE revisions (
                org             text   NOT NULL,
                experiment_id   text   NOT NULL,
                revision        bigint NOT NULL,
                -- What the user sent (JSON or YAML), the JSON text exported, and its meaning as jsonb.
                original_text   text   NOT NULL,
                definition_json text   NOT NULL,
                definition      jsonb  NOT NULL,
                source_format   int    NOT NULL,
                sha256          text   NOT NULL,
                title           text   NOT NULL,
                description     text   NOT NULL DEFAULT '',
                tags            text[] NOT NULL DEFAULT '{}',
                warnings        jsonb  NOT NULL DEFAULT '[]',
                created_us      bigint NOT NULL,
                actor_kind      int    NOT NULL DEFAULT 0,
                actor_id        text   NOT NULL DEFAULT '',
                PRIMARY KEY (org, experiment_id, revision),
                FOREIGN KEY (org, experiment_id) REFERENCES experiments (org, id)
            );
            """),
        Migration(version: 2, name: "executions, events, retention", sql: """
            CREATE TABLE executions (
                org              text    NOT NULL,
                id               text    NOT NULL,
                experiment_id    text    NOT NULL,
                revision         bigint  NOT NULL,
                state            int     NOT NULL,
                deviated         boolean NOT NULL DEFAULT false,
                plan_id          text    NOT NULL DEFAULT '',
                plan_run_id      text    NOT NULL DEFAULT '',
                runner_id        text    NOT NULL DEFAULT '',
                environment_id   text    NOT NULL DEFAULT '',
                integration_ids  text[]  NOT NULL DEFAULT '{}',
                max_duration_us  bigint  NOT NULL DEFAULT 0,
                created_us       bigint  NOT NULL,
                started_us       bigint  NOT NULL DEFAULT 0,
                ended_us         bigint  NOT NULL DEFAULT 0,
                reason           text    NOT NULL DEFAULT '',
                outcome          jsonb,
                -- The journal as reported (text) and as jsonb for queries.
                journal_text     text,
                journal          jsonb,
                log              text    NOT NULL DEFAULT '',
                log_truncated    boolean NOT NULL DEFAULT false,
                log_size         bigint  NOT NULL DEFAULT 0,
                score            double precision,
                score_parts      jsonb,
                complete_digest  text,
                contiguous_seq   bigint  NOT NULL DEFAULT 0,
                events_received  bigint  NOT NULL DEFAULT 0,
                actor_kind       int     NOT NULL DEFAULT 0,
                actor_id         text    NOT NULL DEFAULT '',
                request_id       text,
                -- The user's request in force: NULL, 'pause' or 'terminate'.
                user_request     text CHECK (user_request IN ('pause', 'terminate')),
                pause_max_us     bigint  NOT NULL DEFAULT 0,
                pause_expires_us bigint  NOT NULL DEFAULT 0,
                skip_rollbacks   boolean NOT NULL DEFAULT false,
                user_version     bigint  NOT NULL DEFAULT 0,
                user_at_us       bigint  NOT NULL DEFAULT 0,
                user_actor_kind  int     NOT NULL DEFAULT 0,
                user_actor_id    text    NOT NULL DEFAULT '',
                user_reason      text    NOT NULL DEFAULT '',
                PRIMARY KEY (org, id),
                FOREIGN KEY (org, experiment_id, revision) REFERENCES revisions (org, experiment_id, revision)
            );
            CREATE UNIQUE INDEX executions_id ON executions (id);
            CREATE INDEX executions_by_created ON executions (org, created_us DESC, id DESC);
            CREATE INDEX executions_by_experiment ON executions (org, experiment_id, created_us DESC, id DESC);
            CREATE UNIQUE INDEX executions_request ON executions (org, request_id) WHERE request_id IS NOT NULL;

            -- No foreign key: ingestion checks the execution once per batch, not once per row.
            CREATE TABLE events (
                execution_id  text   NOT NULL,
                seq           bigint NOT NULL,
                type          text   NOT NULL,
                occurred_us   bigint NOT NULL,
                received_us   bigint NOT NULL,
                activity_name text   NOT NULL DEFAULT '',
                payload       jsonb  NOT NULL,
                PRIMARY KEY (execution_id, seq)
            );

            CREATE TABLE retention_policies (
                org                 text   PRIMARY KEY,
                max_age_us          bigint NOT NULL DEFAULT 0,
                max_per_experiment  int    NOT NULL DEFAULT 0
            );
            """),
    ])
}
