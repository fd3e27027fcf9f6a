-- 0003: the latest point of every series, for "the latest power of every GPU" without
-- scanning points. The collector keeps it current in the transaction that writes the points
-- (store::write); the API's /api/v1/latest reads it joined to `series` and `gpus`.
-- fillfactor 50: every batch updates a row per series it touches, and the free space keeps
-- those updates HOT (no index write, no bloat of the primary key).
CREATE TABLE latest (
    series_id integer          PRIMARY KEY,
    ts        timestamptz      NOT NULL,
    value     double precision NOT NULL
) WITH (fillfactor = 50);

-- What is already stored: the last point of each series' newest hour.
INSERT INTO latest (series_id, ts, value)
SELECT DISTINCT ON (series_id) series_id, last_ts, last_value
FROM rollup_1h
ORDER BY series_id, bucket DESC;
