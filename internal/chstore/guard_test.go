package chstore

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// do sends one raw request to the shared server and returns its status,
// exception code and body.
func do(t *testing.T, method, rawQuery string, body string, hdr http.Header, user, pass string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, testServer.URL+"/?"+rawQuery, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-ClickHouse-Exception-Code"), string(b)
}

// TestEndpointNeedsCredentials: no credentials or wrong ones are refused
// before anything runs; each way ClickHouse takes credentials works.
func TestEndpointNeedsCredentials(t *testing.T) {
	table := uniqueName(t)
	create := "CREATE TABLE " + table + " (x UInt8) ENGINE = Memory"
	for _, tt := range []struct{ name, user, pass string }{
		{"none", "", ""},
		{"wrong password", testCreds.User, "guess"},
		{"read-only password for the writer", testCreds.User, testCreds.ReadOnlyPassword},
	} {
		status, code, body := do(t, http.MethodPost, "", create, nil, tt.user, tt.pass)
		if status != http.StatusUnauthorized || code != "516" || !strings.Contains(body, "AUTHENTICATION_FAILED") {
			t.Errorf("%s: %d %s %q", tt.name, status, code, body)
		}
	}
	if status, _, body := do(t, http.MethodPost, "query=SELECT+count()+FROM+system.tables+WHERE+name="+url.QueryEscape("'"+table+"'"), "", nil, testCreds.User, testCreds.Password); status != 200 || body != "0\n" {
		t.Fatalf("a refused CREATE made the table: %d %q", status, body)
	}
	// Headers and URL parameters, as curl users pass them.
	hdr := http.Header{"X-Clickhouse-User": {testCreds.ReadOnlyUser}, "X-Clickhouse-Key": {testCreds.ReadOnlyPassword}}
	if status, _, body := do(t, http.MethodGet, "query=SELECT+7", "", hdr, "", ""); status != 200 || body != "7\n" {
		t.Fatalf("X-ClickHouse-User: %d %q", status, body)
	}
	if status, _, body := do(t, http.MethodGet, "query=SELECT+8&user=reader&password=test-read", "", nil, "", ""); status != 200 || body != "8\n" {
		t.Fatalf("user/password parameters: %d %q", status, body)
	}
	// The liveness answer needs none.
	if status, _, _ := do(t, http.MethodGet, "", "", nil, "", ""); status != 200 {
		t.Fatalf("GET / without credentials: %d", status)
	}
}

// TestEndpointRefusesBrowsers: what a web page can send (a "simple"
// cross-origin text/plain POST, or a same-origin fetch) is refused even
// with the right credentials, so a page cannot use the store through the
// browser of someone on this machine.
func TestEndpointRefusesBrowsers(t *testing.T) {
	table := uniqueName(t)
	for _, hdr := range []http.Header{
		{"Origin": {"https://evil.example"}, "Content-Type": {"text/plain"}},
		{"Origin": {"null"}},
		{"Sec-Fetch-Site": {"cross-site"}},
		{"Sec-Fetch-Mode": {"no-cors"}},
		{"Sec-Fetch-Site": {"same-origin"}, "Sec-Fetch-Mode": {"cors"}},
	} {
		status, code, body := do(t, http.MethodPost, "", "CREATE TABLE "+table+" (x UInt8) ENGINE = Memory", hdr, testCreds.User, testCreds.Password)
		if status != http.StatusForbidden || code != "497" || !strings.Contains(body, "web browsers") {
			t.Errorf("%v: %d %s %q", hdr, status, code, body)
		}
	}
	if status, _, body := do(t, http.MethodPost, "query=EXISTS+TABLE+"+table, "", nil, testCreds.User, testCreds.Password); status != 200 || body != "0\n" {
		t.Fatalf("a browser request made the table: %d %q", status, body)
	}
}

// TestGuardRefusesFilesURLsHosts: with the product's own credentials,
// nothing reaches a file, a URL, another host or a program, however it is
// spelled; refusals are 403 ACCESS_DENIED and run nothing.
func TestGuardRefusesFilesURLsHosts(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.csv")
	if err := os.WriteFile(secret, []byte("top,secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csv")
	lit := func(s string) string { return "'" + s + "'" }
	attacks := []string{
		"SELECT * FROM file(" + lit(secret) + ", 'CSV')",
		"SELECT * FROM FILE (" + lit(secret) + ", 'CSV')",
		"SELECT * FROM file/* a comment */(" + lit(secret) + ")",
		"SELECT * FROM file -- a comment\n(" + lit(secret) + ")",
		"SELECT * FROM `file`(" + lit(secret) + ")",
		"SELECT * FROM \"file\"(" + lit(secret) + ")",
		"SELECT file(" + lit(secret) + ")",
		"SELECT * FROM " + lit(secret),
		"SELECT * FROM `" + secret + "`",
		"SELECT * FROM system.one, " + lit(secret),
		"SELECT * FROM system.one AS o JOIN " + lit(secret) + " AS s ON 1",
		"SELECT * FROM default.`secret.csv`",
		"DESCRIBE TABLE " + lit(secret),
		"INSERT INTO FUNCTION file(" + lit(out) + ", 'CSV') SELECT 1",
		"insert into function FiLe(" + lit(out) + ", 'CSV') select 1",
		"SELECT 1 INTO OUTFILE " + lit(out),
		"INSERT INTO t FROM INFILE " + lit(secret) + " FORMAT CSV",
		"INSERT INTO FUNCTION url('http://127.0.0.1:9/', 'CSV') SELECT 1",
		"SELECT * FROM url('http://127.0.0.1:9/', 'CSV')",
		"SELECT * FROM s3('http://127.0.0.1:9/b/k.csv')",
		"SELECT * FROM remote('127.0.0.1:9', system.one)",
		"SELECT * FROM remoteSecure('127.0.0.1:9', system.one)",
		"SELECT * FROM cluster('default', system.one)",
		"SELECT * FROM executable('x.sh', 'TSV', 'a String')",
		"SELECT * FROM mysql('127.0.0.1:9', 'd', 't', 'u', 'p')",
		"SELECT * FROM postgresql('127.0.0.1:9', 'd', 't', 'u', 'p')",
		"SELECT * FROM icebergLocal(" + lit(dir) + ")",
		"CREATE TABLE f (x String) ENGINE = File(CSV, " + lit(secret) + ")",
		"CREATE TABLE u (x String) ENGINE = URL('http://127.0.0.1:9/', CSV)",
		"CREATE TABLE m (x String) ENGINE = MergeTree ORDER BY x SETTINGS disk = disk(type = local, path = " + lit(dir+"/") + ")",
		"CREATE DATABASE fs ENGINE = Filesystem(" + lit(dir) + ")",
		"CREATE DATABASE fs ENGINE = Filesystem",
		"CREATE DICTIONARY d (x String) PRIMARY KEY x SOURCE(FILE(path " + lit(secret) + " format 'CSV')) LAYOUT(FLAT()) LIFETIME(0)",
		"SYSTEM SHUTDOWN",
		"SYSTEM KILL",
		"SYSTEM RELOAD CONFIG",
		"SYSTEM STOP LISTEN HTTP",
		"BACKUP TABLE system.one TO File(" + lit(out) + ")",
		"ATTACH TABLE a FROM " + lit(dir) + " (x String) ENGINE = Log",
		"SELECT 1 SETTINGS format_schema = " + lit(secret),
		// What the scan cannot read with certainty.
		"SELECT $$ ' $$, file(" + lit(secret) + ") -- '",
		"SELECT $x",
		"SELECT /* /* */ 1 */ 2, file(" + lit(secret) + ")",
		"SELECT 'a\\' , file(" + lit(secret) + ")",
	}
	for _, q := range attacks {
		status, code, body := do(t, http.MethodPost, "", q, nil, testCreds.User, testCreds.Password)
		if status != http.StatusForbidden || code != "497" || strings.Contains(body, "top") {
			t.Errorf("%s\n  => %d %s %q", q, status, code, body)
		}
	}
	// A name passed as a query parameter is not in the text the guard
	// reads: the engine takes a path for a table and reads the file.
	for _, q := range []string{"SELECT * FROM {t:Identifier}", "SELECT * FROM { t : identifier }", "SELECT * FROM system.one JOIN {t:Identifier} ON 1"} {
		for _, creds := range [][2]string{{testCreds.User, testCreds.Password}, {testCreds.ReadOnlyUser, testCreds.ReadOnlyPassword}} {
			status, code, body := do(t, http.MethodPost, "param_t="+url.QueryEscape(secret), q, nil, creds[0], creds[1])
			if status != http.StatusForbidden || code != "497" || strings.Contains(body, "top") {
				t.Errorf("%s as %s with the path as its parameter\n  => %d %s %q", q, creds[0], status, code, body)
			}
		}
	}
	if status, code, _ := do(t, http.MethodPost, "", "SELECT $$;$$; SELECT file("+lit(secret)+")", nil, testCreds.User, testCreds.Password); status != 400 || code != "62" {
		t.Errorf("a second statement after a heredoc: %d %s", status, code)
	}
	// A setting in the URL is checked like one in the query.
	for _, s := range []string{"format_schema=x", "readonly=0", "allow_ddl=1", "max_memory_usage=0", "allow_introspection_functions=1"} {
		if status, code, body := do(t, http.MethodPost, s, "SELECT 1", nil, testCreds.User, testCreds.Password); status != 403 || code != "497" {
			t.Errorf("setting %s: %d %s %q", s, status, code, body)
		}
	}
	// Inline data of an INSERT is data, but an INSERT whose data start the
	// scan and the request parser would see differently is refused.
	if status, code, body := do(t, http.MethodPost, "", "INSERT INTO t SELECT $$ FORMAT CSV\n $$, file("+lit(secret)+")", nil, testCreds.User, testCreds.Password); status != 403 || code != "497" {
		t.Errorf("ambiguous inline data: %d %s %q", status, code, body)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("a refused statement wrote %s", out)
	}
}

// TestGuardPassesTheProduct: what the product and its client send, and
// hostile-looking text inside literals and data, still runs.
func TestGuardPassesTheProduct(t *testing.T) {
	conn := open(t, nil)
	ctx := context.Background()
	table := uniqueName(t)
	exec(t, conn, "CREATE TABLE "+table+" (s String, n UInt32) ENGINE = MergeTree ORDER BY n SETTINGS index_granularity = 8192")
	exec(t, conn, "INSERT INTO "+table+" VALUES ('file(''/etc/passwd'')', 1), ('SELECT * FROM url(x)', 2)")
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append("FROM 'x' INTO OUTFILE", uint32(3)); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var n uint64
	q := "SELECT count() FROM " + table + " AS a, (SELECT 1 AS one) AS b /* file('x') */ WHERE s != 'file(' AND s != {p:String} AND n IN (1, 2, 3)"
	if err := conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"p": "url("})), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("count = %d", n)
	}
	// A parameter named like a keyword is a value, commas after it
	// included (the large benchmarks' generator writes this).
	var at time.Time
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	q = "SELECT toDateTime64({from:DateTime64(3, 'UTC')}, 3, 'UTC') + toIntervalMillisecond({join:UInt64}) FROM numbers(1)"
	if err := conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"from": from.Format("2006-01-02 15:04:05.000"), "join": "1500"})), q).Scan(&at); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if want := from.Add(1500 * time.Millisecond); !at.Equal(want) {
		t.Fatalf("%s = %s, want %s", q, at, want)
	}
	exec(t, conn, "SYSTEM STOP MERGES "+table)
	exec(t, conn, "SYSTEM START MERGES "+table)
	status, code, body := do(t, http.MethodPost, "query="+url.QueryEscape("INSERT INTO "+table+" FORMAT JSONEachRow"),
		`{"s":"file('/etc/passwd')","n":4}`, nil, testCreds.User, testCreds.Password)
	if status != 200 {
		t.Fatalf("JSONEachRow insert: %d %s %q", status, code, body)
	}
	// The read-only account reads, and changes nothing.
	read := func(q string) (int, string, string) {
		return do(t, http.MethodPost, "", q, nil, testCreds.ReadOnlyUser, testCreds.ReadOnlyPassword)
	}
	if status, code, body := read("SELECT count() FROM " + table); status != 200 || body != "4\n" {
		t.Fatalf("read-only SELECT: %d %s %q", status, code, body)
	}
	if status, _, _ := read("SHOW TABLES"); status != 200 {
		t.Fatalf("read-only SHOW: %d", status)
	}
	for _, q := range []string{
		"INSERT INTO " + table + " VALUES ('x', 9)",
		"DROP TABLE " + table,
		"TRUNCATE TABLE " + table,
		"ALTER TABLE " + table + " DELETE WHERE 1",
		"CREATE TABLE x (a UInt8) ENGINE = Memory",
		"SELECT 1 SETTINGS max_memory_usage = 0",
	} {
		if status, code, body := read(q); status != 403 || code != "497" {
			t.Errorf("read-only %s: %d %s %q", q, status, code, body)
		}
	}
	if status, _, body := read("SELECT count() FROM " + table); status != 200 || body != "4\n" {
		t.Fatalf("after refused writes: %d %q", status, body)
	}
}

func TestCredentialsFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	c, created, err := LoadOrCreateCredentials(dir)
	if err != nil || !created {
		t.Fatalf("first start: %v %v", created, err)
	}
	info, err := os.Stat(filepath.Join(dir, CredentialsFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", info, err)
	}
	again, created, err := LoadOrCreateCredentials(dir)
	if err != nil || created || again != c {
		t.Fatalf("second start: %+v %v %v, want %+v", again, created, err, c)
	}
	if len(c.Password) < 32 || c.Password == c.ReadOnlyPassword {
		t.Fatalf("weak or shared passwords: %+v", c)
	}
	if err := os.Chmod(filepath.Join(dir, CredentialsFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateCredentials(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable file: %v", err)
	}
	opts, err := clickhouse.ParseDSN(c.DSN("127.0.0.1:8123", "cockpit"))
	if err != nil || opts.Auth.Username != c.User || opts.Auth.Password != c.Password || opts.Auth.Database != "cockpit" {
		t.Fatalf("DSN: %+v %v", opts, err)
	}
}
