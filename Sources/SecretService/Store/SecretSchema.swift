import FaultlinePostgres

/// The `secrets` schema. Secret values exist here only as AES-GCM ciphertext under a data key,
/// and data keys only wrapped by a master key (which never reaches the database).
enum SecretSchema {
    static let name = "secrets"

    static let migrations = Migrations(schema: name, [
        Migration(version: 1, name: "keys, environments, secrets, integrations, audit", sql: """
            CREATE TABLE data_keys (
                org           text    NOT NULL,
                id            text    NOT NULL,
                wrapped       bytea   NOT NULL,
                master_key_id text    NOT NULL,
                active        boolean NOT NULL,
                created_us    bigint  NOT NULL,
                PRIMARY KEY (org, id)
            );
            -- One data key encrypts an organisation's new secrets; rotation swaps it.
            CREATE UNIQUE INDEX data_keys_active ON data_keys (org) WHERE active;

            CREATE TABLE environments (
                org         text   NOT NULL,
                id          text   NOT NULL,
                name        text   NOT NULL,
                description text   NOT NULL DEFAULT '',
                variables   jsonb  NOT NULL DEFAULT '{}',
                version     bigint NOT NULL,
                created_us  bigint NOT NULL,
                updated_us  bigint NOT NULL,
                PRIMARY KEY (org, id),
                UNIQUE (org, name)
            );

            CREATE TABLE secrets (
                org            text   NOT NULL,
                environment_id text   NOT NULL,
                name           text   NOT NULL,
                -- 1 = environment variable, 2 = file.
                delivery_kind  int    NOT NULL CHECK (delivery_kind IN (1, 2)),
                env_var        text   NOT NULL DEFAULT '',
                file_path      text   NOT NULL DEFAULT '',
                path_env_var   text   NOT NULL DEFAULT '',
                ciphertext     bytea  NOT NULL,
                data_key_id    text   NOT NULL,
                updated_us     bigint NOT NULL,
                PRIMARY KEY (org, environment_id, name),
                FOREIGN KEY (org, environment_id) REFERENCES environments (org, id) ON DELETE CASCADE,
                FOREIGN KEY (org, data_key_id) REFERENCES data_keys (org, id)
            );

            CREATE TABLE integrations (
                org            text   NOT NULL,
                id             text   NOT NULL,
                name           text   NOT NULL,
                description    text   NOT NULL DEFAULT '',
                -- A serialized faultline.secrets.v1.IntegrationConfig (validated; holds no secret values).
                config         bytea  NOT NULL,
                environment_id text,
                version        bigint NOT NULL,
                created_us     bigint NOT NULL,
                updated_us     bigint NOT NULL,
                PRIMARY KEY (org, id),
                UNIQUE (org, name),
                -- No cascade: deleting an environment in use is FAILED_PRECONDITION.
                FOREIGN KEY (org, environment_id) REFERENCES environments (org, id)
            );

            CREATE TABLE audit_events (
                org             text   NOT NULL,
                id              text   NOT NULL,
                occurred_us     bigint NOT NULL,
                action          int    NOT NULL,
                actor_kind      int    NOT NULL DEFAULT 0,
                actor_id        text   NOT NULL DEFAULT '',
                peer            text   NOT NULL DEFAULT '',
                environment_id  text   NOT NULL DEFAULT '',
                integration_ids text[] NOT NULL DEFAULT '{}',
                secret_names    text[] NOT NULL DEFAULT '{}',
                execution_id    text   NOT NULL DEFAULT '',
                PRIMARY KEY (org, id)
            );
            CREATE INDEX audit_by_time ON audit_events (org, occurred_us DESC, id DESC);
            """),
    ])
}
