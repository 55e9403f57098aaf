-- The hourly KPI rollup (pipeline/rollup.go, pipeline/rollup_sql.go): the
-- sums and histograms of every SPEC §5 window metric per closed hour, so a
-- long window reads a few thousand rows instead of its raw events.
--
-- Finding what to rebuild: rows that arrive late (a reply in a later hour,
-- a conversation.started after its messages, an old occurred_at) change
-- the numbers of hours already built. The builder finds them by the time
-- they were stored, so ingested_at gets a skip index.
ALTER TABLE {{db}}.{{table "events"}}{{onCluster}} ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1;
ALTER TABLE {{db}}.{{table "events"}}{{onCluster}} MATERIALIZE INDEX idx_ingested_at;

-- One row per hour, service-level threshold, grouping set and attribute
-- values. mask says which attributes the row is grouped by (bit 0 region,
-- 1 queue, 2 channel, 3 business_line); the others are '' and mean "any".
-- Rows with bit 4 set hold a whole UTC day (hour is its start), added up
-- from its hours, so a month is read as 30 rows rather than 720.
-- sums holds the window sums in the order of pipeline.windowSums, hist the
-- four distributions as (bucket keys, counts) (pipeline/hist.go).
-- A rebuild of an hour writes every key the hour had (zero rows for keys
-- gone) with a higher build, and readers use FINAL: a reader sees either
-- the whole old build or the whole new one of an hour, never a mix, and
-- merges drop the old rows.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "kpi_hourly"}}{{onCluster}}
(
    hour          DateTime('UTC'),
    sl_ms         Int64,
    mask          UInt8,
    region        LowCardinality(String),
    queue         LowCardinality(String),
    channel       LowCardinality(String),
    business_line LowCardinality(String),
    build         UInt64,
    sums          Array(Int64),
    hist          Tuple(keys Array(Int32), counts Array(UInt64))
)
ENGINE = {{engine "ReplacingMergeTree(build)" "kpi_hourly"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (sl_ms, mask, region, queue, channel, business_line, hour);

{{distributed "kpi_hourly" "toUInt32(hour)"}};

-- The builds: an hour (span 1) or a day (span 24) counts as built when a
-- row here says so (written after its rows). as_of is when the build
-- started reading: an hour's build holds every event stored some settle
-- time before it, a day's build the hour builds older than it.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "kpi_hourly_builds"}}{{onCluster}}
(
    hour     DateTime('UTC'),
    sl_ms    Int64,
    span     UInt8,
    build    UInt64,
    as_of    DateTime64(3, 'UTC'),
    rows     UInt64,
    built_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{engine "ReplacingMergeTree(build)" "kpi_hourly_builds"}}
ORDER BY (hour, sl_ms, span);

{{distributed "kpi_hourly_builds" "toUInt32(hour)"}};

-- Hours whose numbers events stored at changed_at may have changed; a
-- build of the hour counts only if its as_of is a settle time after the
-- newest change.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "kpi_hourly_dirty"}}{{onCluster}}
(
    hour       DateTime('UTC'),
    changed_at DateTime64(3, 'UTC')
)
ENGINE = {{engine "ReplacingMergeTree(changed_at)" "kpi_hourly_dirty"}}
ORDER BY hour;

{{distributed "kpi_hourly_dirty" "toUInt32(hour)"}};

-- How far the builder has looked for changes: events stored before
-- scanned_to have marked their hours.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "kpi_hourly_scans"}}{{onCluster}}
(
    scanned_to DateTime64(3, 'UTC')
)
ENGINE = {{engine "ReplacingMergeTree(scanned_to)" "kpi_hourly_scans"}}
ORDER BY tuple();

{{distributed "kpi_hourly_scans" "rand()"}}
