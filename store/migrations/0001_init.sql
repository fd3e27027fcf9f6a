-- 0001: the telemetry store.
-- One row per telemetry point; GPU attributes once per GPU; exact totals kept current by the
-- collector in the same transaction as its rows (so the API never counts the big table);
-- consumer offsets kept beside the data they describe (exactly once); a dead-letter table.

CREATE TABLE telemetry (
    gpu_uuid      text             NOT NULL,
    ts            timestamptz      NOT NULL,  -- when the streamer processed the row
    metric        text             NOT NULL,
    value         double precision NOT NULL,
    source_ts     timestamptz,                -- the CSV's own timestamp
    hostname      text             NOT NULL,
    container     text,
    pod           text,
    namespace     text,
    labels        jsonb            NOT NULL DEFAULT '{}'::jsonb,
    -- Where the point came from in the broker: a GPU's points all live in one partition, so
    -- (ts, src_offset) orders one GPU's points totally and makes paging stable.
    src_partition integer          NOT NULL,
    src_offset    bigint           NOT NULL
);

-- One GPU, a time window, ordered by time: a range scan of this index.
CREATE INDEX telemetry_gpu_ts_idx ON telemetry (gpu_uuid, ts, src_offset);

CREATE TABLE gpus (
    gpu_uuid   text        PRIMARY KEY,
    hostname   text        NOT NULL,
    gpu_index  integer     NOT NULL,
    device     text        NOT NULL,
    model      text        NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL
);

-- Exact per-metric totals, updated with every batch of rows (rows locked in metric order).
CREATE TABLE metric_totals (
    metric   text        PRIMARY KEY,
    points   bigint      NOT NULL,
    first_ts timestamptz NOT NULL,
    last_ts  timestamptz NOT NULL
);

-- The next offset to consume per (group, topic, partition), committed with the rows.
CREATE TABLE consumer_offsets (
    group_name  text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, topic, partition)
);

-- Messages that could not be decoded: kept with the reason, never blocking a partition.
CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    key         text,
    payload     text        NOT NULL,
    reason      text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
