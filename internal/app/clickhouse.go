package app

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cockpit-cs/cockpit/internal/chclient"
	"github.com/cockpit-cs/cockpit/internal/config"
)

// openClickHouse connects with clickhouse-go to the server of cfg.DSN,
// bound to database (empty: the server's default), and pings it.
func openClickHouse(ctx context.Context, cfg config.ClickHouse, database string) (driver.Conn, error) {
	opts, err := clickhouse.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("cannot parse clickhouse.dsn %s: %w", config.RedactDSN(cfg.DSN), err)
	}
	opts.Auth.Database = database
	opts.MaxOpenConns = cfg.MaxOpenConns
	opts.MaxIdleConns = cfg.MaxOpenConns
	opts.DialTimeout = cfg.DialTimeout
	opts.ReadTimeout = cfg.QueryTimeout
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open ClickHouse at %s: %w", config.RedactDSN(cfg.DSN), err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("cannot reach ClickHouse at %s: %w", config.RedactDSN(cfg.DSN), err)
	}
	return chclient.Wrap(conn), nil
}
