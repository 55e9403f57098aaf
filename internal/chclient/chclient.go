// Package chclient is the product's ClickHouse client: a clickhouse-go
// connection that knows the insert columns of the tables it writes.
//
// Over HTTP, clickhouse-go asks the server to describe the table before
// every batch insert whose column types it was not given (PrepareBatch
// without clickhouse.WithColumnNamesAndTypes): one more statement per
// insert, through the same engine the insert then waits for. Wrap keeps
// the types of each insert's columns after the first look-up, so an
// insert is one statement. Tables are migrated before anything inserts
// and their columns do not change while the process runs.
package chclient

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Conn is a driver.Conn whose batch inserts carry their column types.
type Conn struct {
	driver.Conn

	mu    sync.Mutex
	types map[string][]clickhouse.ColumnNameAndType // by table and column list
}

// Wrap returns conn with its insert column types kept (conn itself if
// it keeps them already).
func Wrap(conn driver.Conn) *Conn {
	if c, ok := conn.(*Conn); ok {
		return c
	}
	return &Conn{Conn: conn, types: map[string][]clickhouse.ColumnNameAndType{}}
}

// insertRE takes the table and the column list of an INSERT.
var insertRE = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s+([A-Za-z0-9_.]+)\s*(?:\(([^)]*)\))?`)

// PrepareBatch prepares a batch insert with the column types of its
// table, looked up once per table and column list. A statement it cannot
// read goes to the driver as it is.
func (c *Conn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	m := insertRE.FindStringSubmatch(query)
	if m == nil {
		return c.Conn.PrepareBatch(ctx, query, opts...)
	}
	table := m[1]
	var columns []string
	for _, col := range strings.Split(m[2], ",") {
		if col = strings.TrimSpace(col); col != "" {
			columns = append(columns, col)
		}
	}
	key := table + "(" + strings.Join(columns, ",") + ")"
	c.mu.Lock()
	cols, ok := c.types[key]
	c.mu.Unlock()
	if !ok {
		var err error
		if cols, err = c.describe(ctx, table, columns); err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.types[key] = cols
		c.mu.Unlock()
	}
	return c.Conn.PrepareBatch(clickhouse.Context(ctx, clickhouse.WithColumnNamesAndTypes(cols)), query, opts...)
}

// describe returns the types of table's columns, in the order given
// (none given: every column an insert can name), as clickhouse-go would
// find them.
func (c *Conn) describe(ctx context.Context, table string, columns []string) ([]clickhouse.ColumnNameAndType, error) {
	rows, err := c.Conn.Query(ctx, "DESCRIBE TABLE "+table)
	if err != nil {
		return nil, fmt.Errorf("cannot read the columns of %s: %w", table, err)
	}
	defer rows.Close()
	types := map[string]string{}
	var all []string
	for rows.Next() {
		var name, typ, def, ignore string
		if err := rows.Scan(&name, &typ, &def, &ignore, &ignore, &ignore, &ignore); err != nil {
			return nil, fmt.Errorf("cannot read the columns of %s: %w", table, err)
		}
		if def == "MATERIALIZED" || def == "ALIAS" {
			continue // an insert cannot name them
		}
		types[name] = typ
		all = append(all, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the columns of %s: %w", table, err)
	}
	if len(columns) == 0 {
		columns = all
	}
	out := make([]clickhouse.ColumnNameAndType, 0, len(columns))
	for _, name := range columns {
		typ, ok := types[name]
		if !ok {
			return nil, fmt.Errorf("the table %s has no column %s that an insert can name: is the schema migrated?", table, name)
		}
		out = append(out, clickhouse.ColumnNameAndType{Name: name, Type: typ})
	}
	return out, nil
}
