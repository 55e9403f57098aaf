-- When the leader last evaluated the rules (SPEC §10: the wall never shows
-- what it does not know). The firing list in `alerts` is only as current
-- as the last evaluation: a leader whose ticks are abandoned under load,
-- or no leader at all, leaves it as it was. The leader records an
-- evaluation every few seconds; the wall's alert banner describes the
-- time of the newest one, and turns "unknown" when it grows old. Merges
-- keep the newest row of each term, so the table stays as small as the
-- number of leadership terms.
CREATE TABLE IF NOT EXISTS {{db}}.{{table "rule_evaluations"}}{{onCluster}}
(
    term         UInt64,
    evaluated_at DateTime64(3, 'UTC'),
    member       String
)
ENGINE = {{engine "ReplacingMergeTree(evaluated_at)" "rule_evaluations"}}
ORDER BY term;

{{distributed "rule_evaluations" "cityHash64(term)"}};
