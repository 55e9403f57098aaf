package schemas_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/schemas"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

func TestMigrateIdempotent(t *testing.T) {
	s := chtest.Start(t)
	db, conn := s.Database(t) // migrated once
	admin := s.Conn(t, "")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := schemas.Migrate(ctx, admin, schemas.StoreConfig{Database: db}, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("migration run %d: %v", i+2, err)
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, _ := schemas.Migrations(schemas.StoreConfig{Database: db})
	if n != uint64(len(ms)) {
		t.Fatalf("schema_migrations has %d rows after 3 runs, want %d", n, len(ms))
	}
	var tables []string
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	for _, want := range []string{"events", "ingest_batches", "schema_migrations", "alerts", "alert_history", "silences", "notification_outbox",
		"conversations", "kpi_hourly", "kpi_hourly_builds", "kpi_hourly_dirty", "kpi_hourly_scans", "event_ids", "rule_evaluations", "complaints"} {
		if !slices.Contains(tables, want) {
			t.Errorf("table %s missing; have %v", want, tables)
		}
	}
}

func TestClusterDDL(t *testing.T) {
	ms, err := schemas.Migrations(schemas.StoreConfig{Database: "cs", Cluster: "main"})
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, m := range ms {
		all += strings.Join(m.Statements, ";\n") + ";\n"
	}
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS cs.events_local ON CLUSTER main",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cs/events_local', '{replica}')",
		"replicated_deduplication_window",
		"ENGINE = Distributed(main, cs, events_local, cityHash64(conversation_id))",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cs/alerts_local', '{replica}', version)",
		"ALTER TABLE cs.events_local ON CLUSTER main ADD INDEX IF NOT EXISTS idx_ingested_at",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cs/kpi_hourly_local', '{replica}', build)",
		"ENGINE = Distributed(main, cs, kpi_hourly_local, toUInt32(hour))",
		"ALTER TABLE cs.notification_outbox_local ON CLUSTER main ADD COLUMN IF NOT EXISTS term UInt64",
		"ALTER TABLE cs.notification_outbox ON CLUSTER main ADD COLUMN IF NOT EXISTS term UInt64",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("cluster DDL lacks %q:\n%s", want, all)
		}
	}
	// One statement each: a missing ";" after a Distributed table glues
	// it to the next statement.
	for _, m := range ms {
		for _, st := range m.Statements {
			if n := strings.Count(st, "CREATE ") + strings.Count(st, "ALTER "); n > 1 {
				t.Errorf("migration %s: %d statements run as one:\n%s", m.Name, n, st)
			}
		}
	}
	single, _ := schemas.Migrations(schemas.StoreConfig{Database: "cs"})
	for _, m := range single {
		for _, st := range m.Statements {
			if strings.Contains(st, "ON CLUSTER") || strings.Contains(st, "Distributed") {
				t.Errorf("single-server DDL mentions a cluster: %s", st)
			}
		}
	}
	if _, err := schemas.Migrations(schemas.StoreConfig{Database: "x`; DROP"}); err == nil {
		t.Error("hostile database name accepted")
	}
}

// TestMigrateUpgrade starts from the schema of the release before the
// hourly KPI rollup (every migration but 0004) holding events, migrates,
// and requires the schema a fresh database gets, with the events kept.
func TestMigrateUpgrade(t *testing.T) {
	s := chtest.Start(t)
	fresh, _ := s.Database(t)
	admin := s.Conn(t, "")
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	var b [6]byte
	_, _ = rand.Read(b[:])
	old := "t_up_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+old) })
	cfg := schemas.StoreConfig{Database: old}
	if err := schemas.MigrateSome(ctx, admin, cfg, func(v int) bool { return v != 4 }, logger); err != nil {
		t.Fatal(err)
	}
	if tables := tableDDL(t, admin, old); tables["kpi_hourly"] != "" || tables["events"] == "" {
		t.Fatalf("the old schema is not the one before the rollup: %v", tables)
	}
	if err := admin.Exec(ctx, "INSERT INTO "+old+`.events (event_id, type, occurred_at, conversation_id, region)
		VALUES ('e1', 'conversation.started', now64(3) - INTERVAL 2 HOUR, 'c1', '广州'), ('e2', 'conversation.closed', now64(3) - INTERVAL 1 HOUR, 'c1', '')`); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Migrate(ctx, admin, cfg, logger); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	want, got := tableDDL(t, admin, fresh), tableDDL(t, admin, old)
	for name, ddl := range want {
		if got[name] != ddl {
			t.Errorf("table %s after the upgrade:\n%s\nfresh:\n%s", name, got[name], ddl)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("table %s exists only after the upgrade", name)
		}
	}
	var events, convs uint64
	if err := admin.QueryRow(ctx, "SELECT (SELECT count() FROM "+old+".events), (SELECT count() FROM "+old+".conversations)").Scan(&events, &convs); err != nil {
		t.Fatal(err)
	}
	if events != 2 || convs == 0 {
		t.Errorf("after the upgrade: %d events, %d conversation rows; want 2 and some", events, convs)
	}
}

// upgradeWithout builds a database with every migration but version,
// runs before in it (its table names prefixed with "db."), migrates it to
// the newest schema and runs after. It returns the connection and the
// database's name.
func upgradeWithout(t *testing.T, version int, before, after string) (driver.Conn, string) {
	t.Helper()
	admin := chtest.Start(t).Conn(t, "")
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	var b [6]byte
	_, _ = rand.Read(b[:])
	old := fmt.Sprintf("t_before_%04d_%s", version, hex.EncodeToString(b[:]))
	t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+old) })
	cfg := schemas.StoreConfig{Database: old}
	if err := schemas.MigrateSome(ctx, admin, cfg, func(v int) bool { return v != version }, logger); err != nil {
		t.Fatal(err)
	}
	if err := admin.Exec(ctx, strings.ReplaceAll(before, "db.", old+".")); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Migrate(ctx, admin, cfg, logger); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if err := admin.Exec(ctx, strings.ReplaceAll(after, "db.", old+".")); err != nil {
		t.Fatal(err)
	}
	return admin, old
}

// TestMigrateEventIDs starts from the schema before the event_id index
// (every migration but 0021) holding events, one of them stored twice,
// migrates, and requires every stored event_id in the index, and the
// events inserted afterwards too.
func TestMigrateEventIDs(t *testing.T) {
	admin, old := upgradeWithout(t, 21, `INSERT INTO db.events (event_id, type, occurred_at, conversation_id, region, source_partition, source_offset)
		VALUES ('e1', 'complaint.filed', now64(3) - INTERVAL 2 HOUR, 'c1', '广州', 0, 0),
		       ('e1', 'complaint.filed', now64(3) - INTERVAL 1 HOUR, 'c2', '广州', 1, 0),
		       ('e2', 'conversation.closed', now64(3) - INTERVAL 1 HOUR, 'c1', '', 0, 1)`,
		`INSERT INTO db.events (event_id, type, occurred_at, conversation_id, source_partition, source_offset)
		VALUES ('e3', 'conversation.closed', now64(3), 'c3', 2, 0)`)
	var rows, ids uint64
	if err := admin.QueryRow(context.Background(), "SELECT count(), uniqExact(event_id) FROM "+old+".event_ids").Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != 4 || ids != 3 {
		t.Errorf("event_ids holds %d rows of %d ids, want 4 of 3", rows, ids)
	}
}

// TestMigrateComplaints starts from the schema before the complaints table
// (every migration but 0023) holding events, one complaint stored twice,
// migrates, and requires the stored complaints in the table with their own
// regions, nothing else, and the complaints inserted afterwards too.
func TestMigrateComplaints(t *testing.T) {
	admin, old := upgradeWithout(t, 23, `INSERT INTO db.events (event_id, type, occurred_at, conversation_id, region, source_partition, source_offset)
		VALUES ('e1', 'complaint.filed', now64(3) - INTERVAL 2 HOUR, 'c1', '广州', 0, 0),
		       ('e1', 'complaint.filed', now64(3) - INTERVAL 2 HOUR, 'c1', '广州', 1, 0),
		       ('e2', 'complaint.filed', now64(3) - INTERVAL 1 HOUR, 'c2', '', 0, 1),
		       ('e3', 'conversation.started', now64(3) - INTERVAL 1 HOUR, 'c2', '深圳', 0, 2)`,
		`INSERT INTO db.events (event_id, type, occurred_at, conversation_id, region, source_partition, source_offset)
		VALUES ('e4', 'complaint.filed', now64(3), 'c3', '北京', 2, 0), ('e5', 'message.sent', now64(3), 'c3', '北京', 2, 1)`)
	var got string
	if err := admin.QueryRow(context.Background(), "SELECT toString(groupArray((event_id, region))) FROM (SELECT DISTINCT event_id, region FROM "+old+".complaints ORDER BY event_id)").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "[('e1','广州'),('e2',''),('e4','北京')]"; got != want {
		t.Errorf("complaints hold %s, want %s", got, want)
	}
}

// tableDDL returns the CREATE statement of every table of database, with
// the database's name taken out so two databases compare.
func tableDDL(t *testing.T, conn driver.Conn, database string) map[string]string {
	t.Helper()
	ctx := clickhouse.Context(context.Background(), clickhouse.WithParameters(clickhouse.Parameters{"db": database}))
	rows, err := conn.Query(ctx, "SELECT name, replaceAll(create_table_query, {db:String} || '.', '') FROM system.tables WHERE database = {db:String}")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, ddl string
		if err := rows.Scan(&name, &ddl); err != nil {
			t.Fatal(err)
		}
		out[name] = ddl
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMigrateUpgradeSharedState starts from the schema of the release
// before shared state (every migration but 0020) holding an alert and a
// notification, migrates, and requires the schema a fresh database gets,
// with the rows kept and their term 0.
func TestMigrateUpgradeSharedState(t *testing.T) {
	s := chtest.Start(t)
	fresh, _ := s.Database(t)
	admin := s.Conn(t, "")
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	var b [6]byte
	_, _ = rand.Read(b[:])
	old := "t_up_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+old) })
	cfg := schemas.StoreConfig{Database: old}
	if err := schemas.MigrateSome(ctx, admin, cfg, func(v int) bool { return v < 20 }, logger); err != nil {
		t.Fatal(err)
	}
	if tables := tableDDL(t, admin, old); tables["leader_terms"] != "" || tables["alerts"] == "" {
		t.Fatalf("the old schema is not the one before shared state: %v", tables)
	}
	if err := admin.Exec(ctx, "INSERT INTO "+old+`.alerts (id, fingerprint, rule, severity, state, labels, value, expected,
		explanation, summary, active_at, last_seen, acked_by, ack_note, version)
		VALUES ('a1', 'f1', 'r', 'critical', 'firing', map('region', '广州'), 1, 0, '', '', now64(3), now64(3), '', '', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := admin.Exec(ctx, "INSERT INTO "+old+`.notification_outbox (id, receiver, payload, state, attempts, next_attempt_at,
		last_error, created_at, updated_at, version) VALUES ('n1', 'hook', '{}', 'pending', 0, now64(3), '', now64(3), now64(3), 1)`); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Migrate(ctx, admin, cfg, logger); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	want, got := tableDDL(t, admin, fresh), tableDDL(t, admin, old)
	for name, ddl := range want {
		if got[name] != ddl {
			t.Errorf("table %s after the upgrade:\n%s\nfresh:\n%s", name, got[name], ddl)
		}
	}
	var alerts, outbox uint64
	if err := admin.QueryRow(ctx, "SELECT (SELECT count() FROM "+old+".alerts WHERE term = 0), (SELECT count() FROM "+old+".notification_outbox WHERE term = 0)").Scan(&alerts, &outbox); err != nil {
		t.Fatal(err)
	}
	if alerts != 1 || outbox != 1 {
		t.Errorf("after the upgrade: %d alerts and %d notifications with term 0, want 1 and 1", alerts, outbox)
	}
}

// TestMigrateUpgradeStart: conversations stored before the start column
// (0005) get their earliest start's attributes, whole, after the upgrade.
func TestMigrateUpgradeStart(t *testing.T) {
	s := chtest.Start(t)
	admin := s.Conn(t, "")
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	var b [6]byte
	_, _ = rand.Read(b[:])
	old := "t_up_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+old) })
	cfg := schemas.StoreConfig{Database: old}
	if err := schemas.MigrateSome(ctx, admin, cfg, func(v int) bool { return v != 5 }, logger); err != nil {
		t.Fatal(err)
	}
	if err := admin.Exec(ctx, "INSERT INTO "+old+`.events (event_id, type, occurred_at, conversation_id, region, queue)
		VALUES ('e2', 'conversation.started', now64(3) - INTERVAL 1 HOUR, 'c1', 'B', 'a'),
			('e1', 'conversation.started', now64(3) - INTERVAL 2 HOUR, 'c1', 'A', 'z')`); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Migrate(ctx, admin, cfg, logger); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	// And a later start, stored after the upgrade, does not win.
	if err := admin.Exec(ctx, "INSERT INTO "+old+`.events (event_id, type, occurred_at, conversation_id, region, queue)
		VALUES ('e3', 'conversation.started', now64(3), 'c1', 'C', 'zz')`); err != nil {
		t.Fatal(err)
	}
	var region, queue string
	if err := admin.QueryRow(ctx, "SELECT tupleElement(min(start), 3), tupleElement(min(start), 4) FROM "+old+
		".conversations WHERE conversation_id = 'c1' GROUP BY conversation_id").Scan(&region, &queue); err != nil {
		t.Fatal(err)
	}
	if region != "A" || queue != "z" {
		t.Errorf("attributes after the upgrade = %q, %q; want A, z (the earliest start's)", region, queue)
	}
}

// TestMigrateConversationGranules starts from the schema before the
// conversations table was rebuilt in small granules (every migration but
// 0024) holding conversations, migrates, and requires their facts kept,
// the rows stored afterwards in the rebuilt table (the views that fill it
// name it), the small granules, and nothing of the rebuild left over.
func TestMigrateConversationGranules(t *testing.T) {
	admin, old := upgradeWithout(t, 24, `INSERT INTO db.events (event_id, type, occurred_at, conversation_id, region, actor_role, source_partition, source_offset)
		VALUES ('e1', 'conversation.started', now64(3) - INTERVAL 2 HOUR, 'c1', '广州', '', 0, 0),
		       ('e2', 'message.sent', now64(3) - INTERVAL 2 HOUR + INTERVAL 30 SECOND, 'c1', '', 'bot', 0, 1),
		       ('e3', 'conversation.started', now64(3) - INTERVAL 1 HOUR, 'c2', '深圳', '', 0, 2)`,
		`INSERT INTO db.events (event_id, type, occurred_at, conversation_id, region, actor_role, source_partition, source_offset)
		VALUES ('e4', 'conversation.closed', now64(3), 'c2', '', '', 1, 0),
		       ('e5', 'conversation.started', now64(3), 'c3', '北京', '', 1, 1)`)
	ctx := context.Background()
	var got string
	if err := admin.QueryRow(ctx, `SELECT toString(groupArray((conversation_id, region, has_reply, closed)))
		FROM (SELECT conversation_id, tupleElement(min(start), 3) AS region, min(first_reply_at) IS NOT NULL AS has_reply,
			min(closed_at) IS NOT NULL AS closed
		FROM `+old+`.conversations GROUP BY conversation_id ORDER BY conversation_id)`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "[('c1','广州',1,0),('c2','深圳',0,1),('c3','北京',0,0)]"; got != want {
		t.Errorf("conversations after the rebuild: %s, want %s", got, want)
	}
	tables := tableDDL(t, admin, old)
	if ddl := tables["conversations"]; !strings.Contains(ddl, "index_granularity = 256") {
		t.Errorf("conversations not rebuilt in small granules:\n%s", ddl)
	}
	for name := range tables {
		if strings.HasPrefix(name, "conversations_fine") {
			t.Errorf("%s left over from the rebuild", name)
		}
	}
}
