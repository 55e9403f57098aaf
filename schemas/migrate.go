package schemas

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// StoreConfig says how the ClickHouse schema is laid out.
type StoreConfig struct {
	// Database holds every table. Default "cockpit".
	Database string `yaml:"database"`
	// Cluster, when set, makes the DDL run ON CLUSTER with Replicated*
	// engines for the storage tables and Distributed tables of the plain
	// names in front of them. Empty (default) is a single server.
	Cluster string `yaml:"cluster"`
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Validate checks that the names are plain identifiers: they are written
// into DDL text, so nothing else may pass.
func (c StoreConfig) Validate() error {
	if !identRE.MatchString(c.Database) {
		return fmt.Errorf("database %q is not a plain identifier", c.Database)
	}
	if c.Cluster != "" && !identRE.MatchString(c.Cluster) {
		return fmt.Errorf("cluster %q is not a plain identifier", c.Cluster)
	}
	return nil
}

// Migration is one versioned DDL file.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// Migrations renders the embedded DDL for cfg, in version order.
func Migrations(cfg StoreConfig) ([]Migration, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a version number", base)
		}
		src, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		text, err := render(base, string(src), cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: version, Name: strings.TrimSuffix(base, ".sql"), Statements: splitStatements(text)})
	}
	return out, nil
}

func render(name, src string, cfg StoreConfig) (string, error) {
	clustered := cfg.Cluster != ""
	funcs := template.FuncMap{
		"db": func() string { return cfg.Database },
		"table": func(t string) string {
			if clustered {
				return t + "_local"
			}
			return t
		},
		"onCluster": func() string {
			if clustered {
				return " ON CLUSTER " + cfg.Cluster
			}
			return ""
		},
		"engine": func(engine, table string) string {
			if !clustered {
				return engine
			}
			// ReplacingMergeTree(version) becomes
			// ReplicatedReplacingMergeTree('/path', '{replica}', version).
			name, args, _ := strings.Cut(strings.TrimSuffix(engine, ")"), "(")
			out := fmt.Sprintf("Replicated%s('/clickhouse/tables/{shard}/%s/%s_local', '{replica}'", name, cfg.Database, table)
			if args != "" {
				out += ", " + args
			}
			return out + ")"
		},
		"dedupWindow": func() string {
			if clustered {
				return "replicated_deduplication_window"
			}
			return "non_replicated_deduplication_window"
		},
		// alterDistributed repeats a column change on the Distributed table
		// in front of a clustered one (nothing on a single server).
		"alterDistributed": func(table, change string) string {
			if !clustered {
				return ""
			}
			return fmt.Sprintf("ALTER TABLE %s.%s ON CLUSTER %s %s", cfg.Database, table, cfg.Cluster, change)
		},
		"distributed": func(table, shardKey string) string {
			if !clustered {
				return ""
			}
			return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %[1]s.%[2]s ON CLUSTER %[3]s AS %[1]s.%[2]s_local ENGINE = Distributed(%[3]s, %[1]s, %[2]s_local, %[4]s)",
				cfg.Database, table, cfg.Cluster, shardKey)
		},
	}
	tmpl, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(src)
	if err != nil {
		return "", fmt.Errorf("cannot parse migration %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, nil); err != nil {
		return "", fmt.Errorf("cannot render migration %s: %w", name, err)
	}
	return buf.String(), nil
}

// splitStatements cuts a rendered file at semicolons that end a line and
// drops comment-only and empty pieces. The files are ours, so no semicolon
// ends a line inside a string literal.
func splitStatements(text string) []string {
	var out []string
	for _, part := range strings.Split(text, ";\n") {
		var lines []string
		for _, line := range strings.Split(part, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, line)
			}
		}
		stmt := strings.TrimSuffix(strings.TrimSpace(strings.Join(lines, "\n")), ";")
		if stmt != "" {
			out = append(out, stmt)
		}
	}
	return out
}

// Migrate creates the database and applies every migration not yet
// recorded in schema_migrations. Each statement is idempotent (IF NOT
// EXISTS), so two instances migrating at once, or a run interrupted half
// way, end in the same schema. conn must not be bound to cfg.Database, which
// may not exist yet: statements name it explicitly.
func Migrate(ctx context.Context, conn driver.Conn, cfg StoreConfig, logger *slog.Logger) error {
	return migrate(ctx, conn, cfg, func(int) bool { return true }, logger)
}

// migrate is Migrate over the migrations whose version want accepts (all
// of them but in tests, which build the schema an older release left).
func migrate(ctx context.Context, conn driver.Conn, cfg StoreConfig, want func(version int) bool, logger *slog.Logger) error {
	migrations, err := Migrations(cfg)
	if err != nil {
		return err
	}
	onCluster := ""
	if cfg.Cluster != "" {
		onCluster = " ON CLUSTER " + cfg.Cluster
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database+onCluster); err != nil {
		return fmt.Errorf("cannot create database %s: %w", cfg.Database, err)
	}
	engine := "ReplacingMergeTree"
	if cfg.Cluster != "" {
		engine = fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/schema_migrations', '{replica}')", cfg.Database)
	}
	if err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.schema_migrations%s (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = %s ORDER BY version",
		cfg.Database, onCluster, engine)); err != nil {
		return fmt.Errorf("cannot create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM "+cfg.Database+".schema_migrations")
	if err != nil {
		return fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("cannot read schema_migrations: %w", err)
		}
		applied[int(v)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if applied[m.Version] || !want(m.Version) {
			continue
		}
		for i, stmt := range m.Statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migration %s statement %d: %w", m.Name, i+1, err)
			}
		}
		pctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
			"version": strconv.Itoa(m.Version), "name": m.Name,
		}))
		if err := conn.Exec(pctx, "INSERT INTO "+cfg.Database+".schema_migrations (version, name) VALUES ({version:UInt32}, {name:String})"); err != nil {
			return fmt.Errorf("cannot record migration %s: %w", m.Name, err)
		}
		logger.Info("applied migration", "database", cfg.Database, "migration", m.Name, "statements", len(m.Statements))
	}
	return nil
}
