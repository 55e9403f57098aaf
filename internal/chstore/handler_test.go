package chstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cockpit-cs/cockpit/schemas"
)

func TestPing(t *testing.T) {
	for _, path := range []string{"/ping", "/"} {
		resp, err := http.Get(testServer.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "Ok.\n" {
			t.Errorf("GET %s = %d %q", path, resp.StatusCode, body)
		}
	}
	if err := open(t, nil).Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestServerVersion(t *testing.T) {
	v, err := open(t, nil).ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Version.Major != 26 || v.Revision < 54454 || v.Timezone == nil {
		t.Fatalf("server version = %+v", v)
	}
}

// row holds one value of every column type the project uses.
type row struct {
	S    string
	LC   string
	TS   time.Time
	DT   time.Time
	D    time.Time
	NF   *float32
	NU   *uint8
	U8   uint8
	U16  uint16
	U32  uint32
	U64  uint64
	I32  int32
	I64  int64
	F64  float64
	B    bool
	Arr  []string
	M    map[string]string
	LCN  *string
	Tags []string
}

const typesDDL = `(
	s String, lc LowCardinality(String), ts DateTime64(3, 'UTC'), dt DateTime, d Date,
	nf Nullable(Float32), nu Nullable(UInt8), u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64,
	i32 Int32, i64 Int64, f64 Float64, b Bool, arr Array(String), m Map(String, String),
	lcn LowCardinality(Nullable(String)), tags Array(LowCardinality(String))
) ENGINE = MergeTree ORDER BY (lc, ts)`

func TestRoundTripTypes(t *testing.T) {
	conn := open(t, nil)
	ctx := context.Background()
	table := uniqueName(t)
	exec(t, conn, "CREATE TABLE "+table+" "+typesDDL)

	f := float32(1.5)
	u := uint8(200)
	s := "可空"
	base := time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	want := []row{
		{
			S: "hello\t\"世界\"\n", LC: "广州", TS: base, DT: base.Truncate(time.Second), D: time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC),
			NF: &f, NU: &u, U8: 255, U16: 65535, U32: math.MaxUint32, U64: math.MaxUint64, I32: math.MinInt32, I64: math.MinInt64,
			F64: math.Pi, B: true, Arr: []string{"a", "", "c"}, M: map[string]string{"k": "v", "空": ""}, LCN: &s, Tags: []string{"x", "y"},
		},
		{
			S: "", LC: "深圳", TS: base.Add(time.Millisecond), DT: base.Truncate(time.Second).Add(time.Hour), D: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
			Arr: []string{}, M: map[string]string{}, Tags: []string{},
		},
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range want {
		if err := batch.Append(r.S, r.LC, r.TS, r.DT, r.D, r.NF, r.NU, r.U8, r.U16, r.U32, r.U64, r.I32, r.I64, r.F64, r.B, r.Arr, r.M, r.LCN, r.Tags); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	rows, err := conn.Query(ctx, "SELECT * FROM "+table+" ORDER BY ts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.S, &r.LC, &r.TS, &r.DT, &r.D, &r.NF, &r.NU, &r.U8, &r.U16, &r.U32, &r.U64, &r.I32, &r.I64, &r.F64, &r.B, &r.Arr, &r.M, &r.LCN, &r.Tags); err != nil {
			t.Fatal(err)
		}
		r.TS, r.DT, r.D = r.TS.UTC(), r.DT.UTC(), r.D.UTC()
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestAggregates(t *testing.T) {
	conn := open(t, nil)
	var (
		count     uint64
		avg       float64
		p90       float32 // quantileTDigest returns Float32
		quantiles []float64
		uniq      uint64
		empty     []float64
	)
	err := conn.QueryRow(context.Background(), `
		SELECT count(), avg(number), quantileTDigest(0.9)(number), quantiles(0.5, 0.9)(number),
		       uniqExact(number % 7), quantilesIf(0.5)(number, number > 1e9)
		FROM numbers(1000)`).Scan(&count, &avg, &p90, &quantiles, &uniq, &empty)
	if err != nil {
		t.Fatal(err)
	}
	if count != 1000 || avg != 499.5 || uniq != 7 || len(quantiles) != 2 {
		t.Fatalf("count %d avg %v uniq %d quantiles %v", count, avg, uniq, quantiles)
	}
	if math.Abs(float64(p90)-899) > 10 || math.Abs(quantiles[0]-499.5) > 10 || math.Abs(quantiles[1]-899) > 10 {
		t.Fatalf("p90 %v quantiles %v", p90, quantiles)
	}
	if len(empty) != 1 || !math.IsNaN(empty[0]) {
		t.Fatalf("quantiles over no rows = %v", empty)
	}
}

func TestEmptyResult(t *testing.T) {
	conn := open(t, nil)
	rows, err := conn.Query(context.Background(), "SELECT number FROM numbers(10) WHERE number > 100")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if rows.Next() {
		t.Fatal("expected no rows")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestManyBlocks(t *testing.T) {
	conn := open(t, nil)
	rows, err := conn.Query(context.Background(),
		"SELECT number, toString(number), [number] FROM numbers(300000) SETTINGS max_block_size = 10000")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n, sum uint64
	for rows.Next() {
		var (
			v uint64
			s string
			a []uint64
		)
		if err := rows.Scan(&v, &s, &a); err != nil {
			t.Fatal(err)
		}
		if s != fmt.Sprint(v) || len(a) != 1 || a[0] != v {
			t.Fatalf("row %d: %q %v", v, s, a)
		}
		n++
		sum += v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 300000 || sum != 300000*299999/2 {
		t.Fatalf("n %d sum %d", n, sum)
	}
}

func TestBatch100k(t *testing.T) {
	conn := open(t, nil)
	ctx := context.Background()
	table := uniqueName(t)
	exec(t, conn, "CREATE TABLE "+table+" (id UInt64, region LowCardinality(String), at DateTime64(3, 'UTC'), body String) ENGINE = MergeTree ORDER BY id")
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_700_000_000, 0).UTC()
	for i := 0; i < 100_000; i++ {
		if err := batch.Append(uint64(i), fmt.Sprintf("region-%d", i%30), start.Add(time.Duration(i)*time.Millisecond), strings.Repeat("x", i%200)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var (
		n     uint64
		sum   uint64
		last  time.Time
		lens  uint64
		nRegs uint64
	)
	err = conn.QueryRow(ctx, "SELECT count(), sum(id), max(at), sum(length(body)), uniqExact(region) FROM "+table).Scan(&n, &sum, &last, &lens, &nRegs)
	if err != nil {
		t.Fatal(err)
	}
	var wantLens uint64
	for i := 0; i < 100_000; i++ {
		wantLens += uint64(i % 200)
	}
	if n != 100_000 || sum != 100_000*99_999/2 || !last.Equal(start.Add(99_999*time.Millisecond)) || lens != wantLens || nRegs != 30 {
		t.Fatalf("count %d sum %d max %v lens %d regions %d", n, sum, last, lens, nRegs)
	}
}

var hostile = []string{
	"'; DROP TABLE x; --",
	`back\slash \' \\ \n \t`,
	"tab\there",
	"new\nline\r\ncrlf",
	"nul\x00byte",
	"中文文本，广州市天河区",
	"{s:String}",
	"",
	`\N`,
}

func TestHostileParams(t *testing.T) {
	conn := open(t, nil)
	ctx := context.Background()
	table := uniqueName(t)
	exec(t, conn, "CREATE TABLE "+table+" (s String) ENGINE = MergeTree ORDER BY s")
	for _, s := range hostile {
		// Named: clickhouse-go escapes for the TSV reading of parameters.
		var got, hex string
		if err := conn.QueryRow(ctx, "SELECT {s:String}, hex({s:String})", clickhouse.Named("s", s)).Scan(&got, &hex); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got != s || hex != fmt.Sprintf("%X", s) {
			t.Errorf("Named(%q) came back as %q", s, got)
		}
		exec(t, conn, "INSERT INTO "+table+" SELECT {s:String}", clickhouse.Named("s", s))
	}
	// The values were stored as data, and the table is still there.
	rows, err := conn.Query(ctx, "SELECT s FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		stored[s] = true
	}
	for _, s := range hostile {
		if !stored[s] {
			t.Errorf("%q not stored byte-exact", s)
		}
	}
}

// TestStringsParam: an Array(String) parameter written by
// schemas.StringsParam reaches the engine byte for byte, element by
// element, and IN matches each element.
func TestStringsParam(t *testing.T) {
	conn := open(t, nil)
	ids := schemas.StringsParam(append(slices.Clone(hostile), "\x01\\u", "del\x7f"))
	ctx := clickhouse.Context(context.Background(), clickhouse.WithParameters(clickhouse.Parameters{"ids": ids}))
	var got []string
	if err := conn.QueryRow(ctx, "SELECT {ids:Array(String)}").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := append(slices.Clone(hostile), "\x01\\u", "del\x7f"); !reflect.DeepEqual(got, want) {
		t.Fatalf("came back as %q, want %q", got, want)
	}
	for _, s := range hostile {
		var in uint8
		ctx := clickhouse.Context(context.Background(), clickhouse.WithParameters(clickhouse.Parameters{
			"ids": ids, "s": schemas.StringParam(s)}))
		if err := conn.QueryRow(ctx, "SELECT {s:String} IN {ids:Array(String)} SETTINGS enable_analyzer = 0").Scan(&in); err != nil {
			t.Fatal(err)
		}
		if in != 1 {
			t.Errorf("%q not IN the array", s)
		}
	}
}

func TestParamsRaw(t *testing.T) {
	// WithParameters passes values through untouched, as a ClickHouse
	// server reads them: TSV-escaped text, \N is NULL.
	conn := open(t, nil)
	ctx := clickhouse.Context(context.Background(), clickhouse.WithParameters(clickhouse.Parameters{
		"s":   `a\tb`,
		"n":   `\N`,
		"ts":  "2025-01-02 03:04:05.678",
		"arr": `['x','y\'z']`,
		"id":  "18446744073709551615",
	}))
	var (
		s   string
		isN uint8
		ts  time.Time
		arr []string
		id  uint64
	)
	err := conn.QueryRow(ctx, "SELECT {s:String}, isNull({n:Nullable(String)}), {ts:DateTime64(3, 'UTC')}, {arr:Array(String)}, {id:UInt64}").
		Scan(&s, &isN, &ts, &arr, &id)
	if err != nil {
		t.Fatal(err)
	}
	wantTS := time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	if s != "a\tb" || isN != 1 || !ts.Equal(wantTS) || !reflect.DeepEqual(arr, []string{"x", "y'z"}) || id != math.MaxUint64 {
		t.Fatalf("got %q %d %v %q %d", s, isN, ts, arr, id)
	}
}

func TestTimeParams(t *testing.T) {
	// clickhouse-go sends time.Time parameters as epoch seconds, with a
	// fraction only when the value has one.
	conn := open(t, nil)
	for _, at := range []time.Time{
		time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		time.Date(2025, 6, 1, 12, 0, 0, 123_000_000, time.FixedZone("CST", 8*3600)),
	} {
		var got time.Time
		if err := conn.QueryRow(context.Background(), "SELECT {t:DateTime64(3, 'UTC')}", clickhouse.Named("t", at)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(at) {
			t.Errorf("DateTime64 param %v came back as %v", at, got)
		}
	}
}

func TestDeduplicationToken(t *testing.T) {
	conn := open(t, nil)
	table := uniqueName(t)
	exec(t, conn, "CREATE TABLE "+table+" (id UInt64, v String) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 1000")
	insert := func(token string, from int) {
		t.Helper()
		ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < from+100; i++ {
			if err := batch.Append(uint64(i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
	}
	count := func() uint64 {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert("batch-1", 0)
	insert("batch-1", 0) // a retry of the same batch
	if n := count(); n != 100 {
		t.Fatalf("after a retried batch: %d rows, want 100", n)
	}
	// Same token with different rows still counts as the same batch: the
	// token, not the content, identifies it.
	insert("batch-1", 500)
	if n := count(); n != 100 {
		t.Fatalf("same token, other rows: %d rows, want 100", n)
	}
	insert("batch-2", 0) // identical rows, new token: stored
	if n := count(); n != 200 {
		t.Fatalf("after a new token: %d rows, want 200", n)
	}
	// Without a token the token of an earlier request must not linger on
	// the pooled session: identical content deduplicates by hash instead,
	// so use new content.
	for i := 0; i < 8; i++ {
		exec(t, conn, fmt.Sprintf("INSERT INTO %s VALUES (%d, 'plain')", table, 1000+i))
	}
	if n := count(); n != 208 {
		t.Fatalf("after untokened inserts: %d rows, want 208", n)
	}
}

func TestSettingsPerQuery(t *testing.T) {
	conn := open(t, nil)
	slow := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"max_execution_time": 1}))
	err := conn.Exec(slow, "SELECT sleepEachRow(0.2) FROM numbers(20) SETTINGS max_block_size = 1 FORMAT Null")
	if code := exceptionCode(err); code != 159 {
		t.Fatalf("max_execution_time: err = %v, want code 159", err)
	}
	// Every pooled session is clean afterwards.
	for i := 0; i < 8; i++ {
		var v float64
		if err := conn.QueryRow(context.Background(), "SELECT getSetting('max_execution_time')").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != 0 {
			t.Fatalf("max_execution_time leaked: %v", v)
		}
	}
	var threads uint64
	ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"max_threads": 3}))
	if err := conn.QueryRow(ctx, "SELECT toUInt64(getSetting('max_threads'))").Scan(&threads); err != nil {
		t.Fatal(err)
	}
	if threads != 3 {
		t.Fatalf("max_threads = %d", threads)
	}
	unknown := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"no_such_setting": 1}))
	if code := exceptionCode(conn.Exec(unknown, "SELECT 1")); code != 497 {
		t.Fatalf("unknown setting: code %d, want 497 (not on the endpoint's list)", code)
	}
}

func TestConnectionSettingsAndAsyncInsert(t *testing.T) {
	// Options.Settings ride on every request of the connection.
	conn := open(t, func(o *clickhouse.Options) {
		o.Settings = clickhouse.Settings{"max_threads": 2, "wait_end_of_query": 1}
	})
	var threads uint64
	if err := conn.QueryRow(context.Background(), "SELECT toUInt64(getSetting('max_threads'))").Scan(&threads); err != nil {
		t.Fatal(err)
	}
	if threads != 2 {
		t.Fatalf("max_threads = %d", threads)
	}
	table := uniqueName(t)
	exec(t, conn, "CREATE TABLE "+table+" (id UInt64) ENGINE = MergeTree ORDER BY id")
	if err := conn.AsyncInsert(context.Background(), "INSERT INTO "+table+" VALUES (1), (2)", true); err != nil { //nolint:staticcheck // the deprecated call is what clients still send
		t.Fatal(err)
	}
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("async insert stored %d rows", n)
	}
}

func TestErrors(t *testing.T) {
	conn := open(t, nil)
	tests := []struct {
		query string
		code  int
	}{
		{"SELECT * FROM no_such_table", 60},
		{"SELEKT 1", 62},
		{"SELECT 1; SELECT 2", 62},
		{"SELECT * FROM no_such_db.t", 81},
		{"SELECT throwIf(1, 'boom')", 395},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			err := conn.Exec(context.Background(), tt.query)
			if code := exceptionCode(err); code != tt.code {
				t.Fatalf("err = %v, code %d, want %d", err, code, tt.code)
			}
			_, err = conn.Query(context.Background(), tt.query)
			if code := exceptionCode(err); code != tt.code {
				t.Fatalf("query: err = %v, code %d, want %d", err, code, tt.code)
			}
		})
	}
	batch, err := conn.PrepareBatch(context.Background(), "INSERT INTO no_such_table")
	if err == nil {
		_ = batch.Abort()
		t.Fatal("PrepareBatch on a missing table succeeded")
	}
	if code := exceptionCode(err); code != 60 {
		t.Fatalf("PrepareBatch: err = %v, code %d", err, code)
	}
}

func TestDatabaseOption(t *testing.T) {
	conn := open(t, nil)
	exec(t, conn, "CREATE DATABASE IF NOT EXISTS cockpit_db")
	exec(t, conn, "CREATE TABLE IF NOT EXISTS cockpit_db.events (id UInt64) ENGINE = MergeTree ORDER BY id")
	dbConn := open(t, func(o *clickhouse.Options) { o.Auth.Database = "cockpit_db" })
	exec(t, dbConn, "INSERT INTO events VALUES (7)")
	var db string
	var n uint64
	if err := dbConn.QueryRow(context.Background(), "SELECT currentDatabase(), count() FROM events").Scan(&db, &n); err != nil {
		t.Fatal(err)
	}
	if db != "cockpit_db" || n != 1 {
		t.Fatalf("database %q count %d", db, n)
	}
	if err := conn.QueryRow(context.Background(), "SELECT currentDatabase()").Scan(&db); err != nil || db != "default" {
		t.Fatalf("default connection sees database %q (%v)", db, err)
	}
}

func TestCompression(t *testing.T) {
	for _, method := range []clickhouse.CompressionMethod{clickhouse.CompressionLZ4, clickhouse.CompressionZSTD, clickhouse.CompressionGZIP, clickhouse.CompressionDeflate, clickhouse.CompressionBrotli} {
		t.Run(method.String(), func(t *testing.T) {
			conn := open(t, func(o *clickhouse.Options) {
				o.Compression = &clickhouse.Compression{Method: method}
				o.Settings = clickhouse.Settings{"enable_http_compression": 1}
			})
			table := uniqueName(t)
			exec(t, conn, "CREATE TABLE "+table+" (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
			batch, err := conn.PrepareBatch(context.Background(), "INSERT INTO "+table)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5000; i++ {
				if err := batch.Append(uint64(i), strings.Repeat("z", i%50)); err != nil {
					t.Fatal(err)
				}
			}
			if err := batch.Send(); err != nil {
				t.Fatal(err)
			}
			var n, sum uint64
			if err := conn.QueryRow(context.Background(), "SELECT count(), sum(length(s)) FROM "+table).Scan(&n, &sum); err != nil {
				t.Fatal(err)
			}
			if n != 5000 || sum != 100*(49*50/2) {
				t.Fatalf("count %d sum %d", n, sum)
			}
			if code := exceptionCode(conn.Exec(context.Background(), "SELECT * FROM nope")); code != 60 {
				t.Fatalf("error through compression: code %d", code)
			}
		})
	}
}

func TestConcurrentClients(t *testing.T) {
	conn := open(t, func(o *clickhouse.Options) { o.MaxOpenConns = 16 })
	table := uniqueName(t)
	exec(t, conn, "CREATE TABLE "+table+" (g UInt8, i UInt32, s String) ENGINE = MergeTree ORDER BY (g, i)")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for round := 0; round < 10; round++ {
					batch, err := conn.PrepareBatch(context.Background(), "INSERT INTO "+table)
					if err != nil {
						return err
					}
					for i := 0; i < 500; i++ {
						if err := batch.Append(uint8(g), uint32(round*500+i), "payload"); err != nil {
							return err
						}
					}
					if err := batch.Send(); err != nil {
						return err
					}
					var n uint64
					if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table+" WHERE g = {g:UInt8}", clickhouse.Named("g", fmt.Sprint(g))).Scan(&n); err != nil {
						return err
					}
					if n != uint64((round+1)*500) {
						return fmt.Errorf("goroutine %d round %d: count %d", g, round, n)
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestRawHTTP(t *testing.T) {
	post := func(rawQuery string, body []byte, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, testServer.URL+"/?"+rawQuery, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(testCreds.User, testCreds.Password)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// curl-style GET with the query in the URL, TabSeparated by default.
	resp, err := http.Get(testServer.URL + "/?query=" + url.QueryEscape("SELECT 1 + {x:UInt8}") + "&param_x=41&user=reader&password=test-read")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "42\n" || resp.Header.Get("X-ClickHouse-Summary") == "" {
		t.Fatalf("GET query: %d %q %v", resp.StatusCode, b, resp.Header)
	}

	resp, body := post("default_format=JSONEachRow", []byte("SELECT 'a' AS x"), nil)
	if resp.StatusCode != 200 || body != "{\"x\":\"a\"}\n" || resp.Header.Get("X-ClickHouse-Format") != "JSONEachRow" {
		t.Fatalf("JSONEachRow: %d %q", resp.StatusCode, body)
	}
	// A FORMAT clause wins, and is not re-encoded as Native.
	resp, body = post("default_format=Native&client_protocol_version=54460", []byte("SELECT 2 AS y FORMAT CSV"), nil)
	if resp.StatusCode != 200 || body != "2\n" {
		t.Fatalf("FORMAT CSV: %d %q", resp.StatusCode, body)
	}

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := io.WriteString(zw, "SELECT 'zipped'"); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	resp, body = post("", gz.Bytes(), map[string]string{"Content-Encoding": "gzip"})
	if resp.StatusCode != 200 || body != "zipped\n" {
		t.Fatalf("gzip body: %d %q", resp.StatusCode, body)
	}

	tests := []struct {
		name     string
		query    string
		body     []byte
		hdr      map[string]string
		status   int
		code     string
		contains string
	}{
		{"empty query", "", nil, nil, 400, "36", "Empty query"},
		{"bad revision", "client_protocol_version=x", []byte("SELECT 1"), nil, 400, "36", "client_protocol_version"},
		{"bad gzip", "", []byte("not gzip"), map[string]string{"Content-Encoding": "gzip"}, 400, "36", "gzip"},
		{"unknown encoding", "", []byte("SELECT 1"), map[string]string{"Content-Encoding": "snappy2"}, 400, "36", "Content-Encoding"},
		{"too large", "", bytes.Repeat([]byte(" "), 256<<20+1), nil, 413, "36", "exceeds"},
		{"bad setting name", "max-threads=1", []byte("SELECT 1"), nil, 403, "497", "Setting max-threads"},
		{"syntax", "", []byte("SELEKT"), nil, 500, "62", "Syntax error"},
		{"SET refused", "", []byte("SET max_threads = 1"), nil, 500, "1", "not supported"},
		{"multipart", "", []byte("--x"), map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 400, "36", "External tables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(tt.query, tt.body, tt.hdr)
			if resp.StatusCode != tt.status || resp.Header.Get("X-ClickHouse-Exception-Code") != tt.code ||
				!strings.HasPrefix(body, "Code: "+tt.code+". DB::Exception: ") || !strings.Contains(body, tt.contains) {
				t.Fatalf("status %d code %q body %q", resp.StatusCode, resp.Header.Get("X-ClickHouse-Exception-Code"), body)
			}
		})
	}

	resp, err = http.Get(testServer.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPut, testServer.URL+"/?query=SELECT+1", nil)
	req.SetBasicAuth(testCreds.User, testCreds.Password)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
}
