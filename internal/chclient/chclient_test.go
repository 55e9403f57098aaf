package chclient_test

import (
	"context"
	"os"
	"testing"

	"github.com/cockpit-cs/cockpit/internal/chclient"
	"github.com/cockpit-cs/cockpit/internal/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }

// TestInsertsAreOneStatement: after the first batch insert into a table
// (with a given column list), the next are one statement each, not a
// description of the table and then the insert; rows land in the named
// columns whatever their order in the table, and a materialized column
// is left to the table.
func TestInsertsAreOneStatement(t *testing.T) {
	st := chtest.Start(t)
	_, conn := st.Database(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, `CREATE TABLE t (a UInt32, b String, c DateTime64(3, 'UTC') DEFAULT now64(3),
		d UInt64 MATERIALIZED a * 2) ENGINE = MergeTree ORDER BY a`); err != nil {
		t.Fatal(err)
	}
	insert := func(query string, rows ...[]any) int64 {
		t.Helper()
		before := st.Statements()
		b, err := conn.PrepareBatch(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if err := b.Append(r...); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
		return st.Statements() - before
	}
	if n := insert("INSERT INTO t (b, a)", []any{"x", uint32(1)}); n != 2 {
		t.Errorf("first insert: %d statements, want 2 (describe, insert)", n)
	}
	for i := range 3 {
		if n := insert("INSERT INTO t (b, a)", []any{"y", uint32(2 + i)}); n != 1 {
			t.Errorf("insert %d: %d statements, want 1", i+2, n)
		}
	}
	// Without a column list: every column an insert can name, in order.
	if n := insert("INSERT INTO t", []any{uint32(9), "z", int64(0)}); n != 2 {
		t.Errorf("first insert without a column list: %d statements, want 2", n)
	}
	var got, sum uint64
	if err := conn.QueryRow(ctx, "SELECT count(), sum(d) FROM t WHERE b != ''").Scan(&got, &sum); err != nil {
		t.Fatal(err)
	}
	if got != 5 || sum != 2*(1+2+3+4+9) {
		t.Errorf("stored %d rows, materialized sum %d; want 5 and %d", got, sum, 2*(1+2+3+4+9))
	}
	// A column the table lacks is an error, not a guess.
	if _, err := conn.PrepareBatch(ctx, "INSERT INTO t (a, nope)"); err == nil {
		t.Error("an insert naming a missing column was prepared")
	}
	if chclient.Wrap(conn) != conn {
		t.Error("wrapping the product's client again made another")
	}
}
