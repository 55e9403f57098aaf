package schemas_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

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
		"conversations", "kpi_hourly", "kpi_hourly_builds", "kpi_hourly_dirty", "kpi_hourly_scans"} {
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
