import FaultlinePostgres

/// The `schedules` schema. A plan keeps its validated spec as the serialized message and, beside
/// it, the dispatcher's cursor: what was handled so far and when it must look again. Plan runs
/// carry what dispatch needs (options, limits, retry policy) so dispatch never re-reads the plan.
enum ScheduleSchema {
    static let name = "schedules"

    static let migrations = Migrations(schema: name, [
        Migration(version: 1, name: "plans, plan runs, runners, halts", sql: """
            CREATE TABLE plans (
                org                text    NOT NULL,
                id                 text    NOT NULL,
                request_id         text    NOT NULL DEFAULT '',
                -- A serialized, validated faultline.schedules.v1.PlanSpec.
                spec               bytea   NOT NULL,
                experiment_id      text    NOT NULL,
                state              int     NOT NULL,
                -- Occurrences before this instant never run (creation, or the last spec change).
                active_since_us    bigint  NOT NULL,
                -- FirePlanner's cursor: every occurrence at or before it is handled.
                handled_through_us bigint,
                -- When the next occurrence is due; NULL = none (paused, finished).
                next_fire_us       bigint,
                version            bigint  NOT NULL,
                created_us         bigint  NOT NULL,
                updated_us         bigint  NOT NULL,
                actor_kind         int     NOT NULL DEFAULT 0,
                actor_id           text    NOT NULL DEFAULT '',
                PRIMARY KEY (org, id)
            );
            CREATE UNIQUE INDEX plans_request ON plans (org, request_id) WHERE request_id <> '';
            CREATE INDEX plans_due ON plans (next_fire_us) WHERE state = 1;

            CREATE TABLE plan_runs (
                org                 text    NOT NULL,
                id                  text    NOT NULL,
                plan_id             text    NOT NULL DEFAULT '',
                request_id          text    NOT NULL DEFAULT '',
                experiment_id       text    NOT NULL,
                experiment_revision bigint  NOT NULL DEFAULT 0,
                environment_id      text    NOT NULL DEFAULT '',
                integration_ids     text[]  NOT NULL DEFAULT '{}',
                -- A serialized faultline.schedules.v1.RunOptions.
                options             bytea   NOT NULL,
                -- Runs of the plan dispatched at once; 0 = no limit (RunExperiment).
                max_in_flight       int     NOT NULL DEFAULT 0,
                max_retries         int     NOT NULL DEFAULT 0,
                retry_backoff_us    bigint  NOT NULL DEFAULT 0,
                state               int     NOT NULL,
                trigger             int     NOT NULL,
                -- The scheduled instant: with the plan, the key that makes a fire exactly-once.
                occurrence_us       bigint  NOT NULL,
                due_us              bigint  NOT NULL,
                not_before_us       bigint  NOT NULL,
                created_us          bigint  NOT NULL,
                dispatched_us       bigint  NOT NULL DEFAULT 0,
                ended_us            bigint  NOT NULL DEFAULT 0,
                runner_id           text    NOT NULL DEFAULT '',
                -- A replica is calling StartRun on runner_id until then; after it another may retry
                -- (StartRun is idempotent on the plan run id).
                claim_until_us      bigint  NOT NULL DEFAULT 0,
                avoid_runners       text[]  NOT NULL DEFAULT '{}',
                avoid_until_us      bigint  NOT NULL DEFAULT 0,
                execution_id        text    NOT NULL DEFAULT '',
                execution_state     int     NOT NULL DEFAULT 0,
                attempt             int     NOT NULL DEFAULT 1,
                retry_of            text    NOT NULL DEFAULT '',
                reason              text    NOT NULL DEFAULT '',
                PRIMARY KEY (org, id)
            );
            -- Belt and braces for exactly-once: one scheduled (or catch-up) run per occurrence.
            CREATE UNIQUE INDEX plan_runs_occurrence ON plan_runs (org, plan_id, occurrence_us) WHERE trigger IN (1, 4);
            CREATE UNIQUE INDEX plan_runs_request ON plan_runs (org, request_id) WHERE request_id <> '';
            CREATE INDEX plan_runs_id ON plan_runs (id);
            CREATE INDEX plan_runs_execution ON plan_runs (execution_id) WHERE execution_id <> '';
            CREATE INDEX plan_runs_open ON plan_runs (not_before_us) WHERE state IN (1, 2);
            CREATE INDEX plan_runs_in_flight ON plan_runs (plan_id) WHERE state IN (1, 2, 3);
            CREATE INDEX plan_runs_on_runner ON plan_runs (runner_id) WHERE state IN (1, 2, 3);
            CREATE INDEX plan_runs_history ON plan_runs (org, due_us DESC, id DESC);
            CREATE INDEX plan_runs_of_plan ON plan_runs (org, plan_id, due_us DESC, id DESC);

            CREATE TABLE runners (
                id            text    PRIMARY KEY,
                name          text    NOT NULL DEFAULT '',
                address       text    NOT NULL,
                labels        jsonb   NOT NULL DEFAULT '{}',
                capacity      int     NOT NULL,
                running       int     NOT NULL DEFAULT 0,
                state         int     NOT NULL,
                version       text    NOT NULL DEFAULT '',
                registered_us bigint  NOT NULL,
                heartbeat_us  bigint  NOT NULL,
                lease_us      bigint  NOT NULL
            );

            CREATE TABLE halts (
                org            text    PRIMARY KEY,
                halted_us      bigint  NOT NULL,
                actor_kind     int     NOT NULL DEFAULT 0,
                actor_id       text    NOT NULL DEFAULT '',
                reason         text    NOT NULL DEFAULT '',
                skip_rollbacks boolean NOT NULL DEFAULT false
            );

            -- Executions a runner must stop, handed to it with its next heartbeat (in case the
            -- direct CancelRun did not reach it).
            CREATE TABLE cancellations (
                runner_id      text    NOT NULL,
                execution_id   text    NOT NULL,
                created_us     bigint  NOT NULL,
                PRIMARY KEY (runner_id, execution_id)
            );
            """),
        Migration(version: 2, name: "runners dedicated to organisations", sql: """
            -- Empty: a shared runner (every organisation); else the organisations whose runs alone it takes.
            ALTER TABLE runners ADD COLUMN organizations text[] NOT NULL DEFAULT '{}';
            """),
        Migration(version: 3, name: "retention of skipped plan runs", sql: """
            -- The retention prune takes the oldest SKIPPED runs first (PlanRunRetention).
            CREATE INDEX plan_runs_skipped_age ON plan_runs (created_us) WHERE state = 5;
            """),
    ])
}
