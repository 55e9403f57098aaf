package chdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
)

// testEngine is the one engine of this test process (one per process is all
// the library allows), on a temporary data directory.
var testEngine *Engine

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	lib, err := Ensure(ctx, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chdb tests need the engine:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "chdb-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// A connection-level setting whose value is not the engine's DEFAULT:
	// TestSettingsFollowEachStatement tells the two apart.
	testEngine, err = Open(Config{LibPath: lib, DataDir: dir, Connections: 3,
		Settings: map[string]string{"log_comment": "chdb-test"}}, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testEngine.Close()
	return m.Run()
}

// query runs q and returns its TabSeparated output.
func query(t *testing.T, st Statement) string {
	t.Helper()
	res, err := testEngine.Do(context.Background(), st)
	if err != nil {
		t.Fatalf("%s: %v", st.Query, err)
	}
	return string(res.Data)
}

func sql(t *testing.T, q string) string {
	t.Helper()
	return query(t, Statement{Query: []byte(q)})
}

func TestGoSignalHandlersSurviveOpen(t *testing.T) {
	// A nil dereference must still become a recoverable panic: with the
	// engine's SIGSEGV handler in place it would kill the process.
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("expected a panic")
		}
	}()
	var p *int
	_ = *p //nolint:govet // deliberate nil dereference
}

func TestVersion(t *testing.T) {
	got := sql(t, "SELECT version() LIKE '26.5.%', revision() >= 54454")
	if got != "1\t1\n" {
		t.Fatalf("version check = %q", got)
	}
}

// TestEngineDefaults: the engine runs with engineDefaults (the memory
// worker's period), and Args overrides them.
func TestEngineDefaults(t *testing.T) {
	got := sql(t, "SELECT value FROM system.server_settings WHERE name = 'memory_worker_period_ms'")
	if got != "1000\n" {
		t.Fatalf("memory_worker_period_ms = %q, want 1000", got)
	}
	if d := defaultArgs([]string{"--memory_worker_period_ms=50"}); len(d) != 0 {
		t.Fatalf("defaults beside an override: %q", d)
	}
	if d := defaultArgs([]string{"--logger.level=warning"}); len(d) != len(engineDefaults) {
		t.Fatalf("defaults beside another option: %q", d)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		query string
		code  int
	}{
		{"SELECT * FROM no_such_table", CodeUnknownTable},
		{"SELEKT 1", CodeSyntaxError},
		{"SELECT 1 SETTINGS no_such_setting = 1", CodeUnknownSetting},
		{"SET max_threads = 1", codeUnsupportedMethod},
		{" /* c */ use system", codeUnsupportedMethod},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			_, err := testEngine.Query(context.Background(), []byte(tt.query), "TSV", nil)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error = %v, want *Error", err)
			}
			if ce.Code != tt.code {
				t.Fatalf("code = %d, want %d (%v)", ce.Code, tt.code, err)
			}
			if !strings.HasPrefix(ce.Error(), fmt.Sprintf("Code: %d. DB::Exception: ", tt.code)) {
				t.Fatalf("text = %q", ce.Error())
			}
		})
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		in   string
		code int
		msg  string
	}{
		{"Code: 60. DB::Exception: Unknown table x. (UNKNOWN_TABLE)", 60, "Unknown table x. (UNKNOWN_TABLE)"},
		{"Code: 241. DB::Exception: Code: 241. DB::Exception: Memory limit. (MEMORY_LIMIT_EXCEEDED)\n", 241, "Memory limit. (MEMORY_LIMIT_EXCEEDED)"},
		{"Code: 1. DB::Exception: Code: 2. DB::Exception: inner", 1, "Code: 2. DB::Exception: inner"},
		{"something odd", 0, "something odd"},
		{"Code: x. nope", 0, "Code: x. nope"},
		{"", 0, ""},
	}
	for _, tt := range tests {
		e := parseError(tt.in)
		if e.Code != tt.code || e.Message != tt.msg {
			t.Errorf("parseError(%q) = %d %q, want %d %q", tt.in, e.Code, e.Message, tt.code, tt.msg)
		}
	}
}

func TestParamsAreData(t *testing.T) {
	hostile := []string{
		"'; DROP TABLE x; --",
		`back\slash \' \\ \n`,
		"tab\there\nnewline\r\ncrlf",
		"nul\x00byte",
		"中文文本，广州",
		"",
		`{x:String}`,
	}
	for _, s := range hostile {
		got := query(t, Statement{
			Query:  []byte("SELECT hex({s:String})"),
			Params: map[string]string{"s": EscapeParam(s)},
		})
		want := fmt.Sprintf("%X\n", s)
		if got != want {
			t.Errorf("param %q came back as %q, want %q", s, got, want)
		}
	}
}

func TestParamTypes(t *testing.T) {
	got := query(t, Statement{
		Query: []byte("SELECT {a:UInt64} + 1, {t:DateTime64(3, 'UTC')}, {d:DateTime('UTC')}, {n:Nullable(String)} IS NULL, {arr:Array(String)}"),
		Params: map[string]string{
			"a":   "41",
			"t":   "1700000000.123",
			"d":   "1700000000",
			"n":   `\N`,
			"arr": `['a','b\'c']`,
		},
	})
	want := "42\t2023-11-14 22:13:20.123\t2023-11-14 22:13:20\t1\t['a','b\\'c']\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestSettingsScopedToStatement(t *testing.T) {
	// Run more statements than there are connections so every pooled
	// session is visited after the override.
	got := query(t, Statement{
		Query:    []byte("SELECT getSetting('max_threads'), getSetting('insert_deduplication_token')"),
		Settings: map[string]string{"max_threads": "7", "insert_deduplication_token": "tok'en"},
	})
	if got != "7\ttok\\'en\n" { // TSV escapes the quote
		t.Fatalf("with settings: %q", got)
	}
	for i := 0; i < 10; i++ {
		got := sql(t, "SELECT getSetting('max_threads') != 7, getSetting('insert_deduplication_token')")
		if got != "1\t\n" {
			t.Fatalf("settings leaked into a later statement: %q", got)
		}
	}
}

// TestSettingsFollowEachStatement: settings stay on a connection between
// statements (applySettings), so a statement must see its own settings,
// whatever the one before it on the same connection set, and nothing of
// the settings it does not name: implicit_select back to false, and
// log_comment back to its connection-level value (Config.Settings), not to
// the engine's DEFAULT (”).
func TestSettingsFollowEachStatement(t *testing.T) {
	const q = "SELECT getSetting('max_threads'), getSetting('insert_deduplication_token'), getSetting('implicit_select'), getSetting('log_comment')"
	steps := []struct {
		settings map[string]string
		want     string
	}{
		{map[string]string{"max_threads": "7", "insert_deduplication_token": "a", "implicit_select": "1", "log_comment": "x"}, "7\ta\ttrue\tx\n"},
		{map[string]string{"max_threads": "7", "insert_deduplication_token": "a", "implicit_select": "1", "log_comment": "x"}, "7\ta\ttrue\tx\n"},
		{map[string]string{"max_threads": "3", "insert_deduplication_token": "a"}, "3\ta\tfalse\tchdb-test\n"},
		{map[string]string{"max_threads": "3"}, "3\t\tfalse\tchdb-test\n"},
		{map[string]string{"insert_deduplication_token": ""}, "\t\tfalse\tchdb-test\n"},
		{nil, "\t\tfalse\tchdb-test\n"},
	}
	// Every step on every pooled connection (three): each may hold any
	// earlier step's settings when the next one arrives.
	for round := 0; round < 3; round++ {
		for i, step := range steps {
			for range 3 {
				got := query(t, Statement{Query: []byte(q), Settings: step.settings})
				if i >= 4 {
					// max_threads is then the engine's default, which
					// depends on the machine: only its absence of 7 and 3.
					threads, rest, _ := strings.Cut(got, "\t")
					if threads == "7" || threads == "3" {
						t.Fatalf("round %d step %d: max_threads %s leaked", round, i, threads)
					}
					got = "\t" + rest
				}
				if got != step.want {
					t.Fatalf("round %d step %d (%v): got %q, want %q", round, i, step.settings, got, step.want)
				}
			}
		}
	}
}

func TestMaxExecutionTimeHonoured(t *testing.T) {
	_, err := testEngine.Do(context.Background(), Statement{
		Query:    []byte("SELECT sleepEachRow(0.2) FROM numbers(20) SETTINGS max_block_size = 1"),
		Settings: map[string]string{"max_execution_time": "1"},
	})
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeTimeoutExceeded {
		t.Fatalf("err = %v, want code %d", err, CodeTimeoutExceeded)
	}
}

func TestUnknownSettingLeavesSessionClean(t *testing.T) {
	_, err := testEngine.Do(context.Background(), Statement{
		Query:    []byte("SELECT 1"),
		Settings: map[string]string{"max_threads": "5", "no_such_setting": "1"},
	})
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeUnknownSetting {
		t.Fatalf("err = %v, want code %d", err, CodeUnknownSetting)
	}
	for i := 0; i < 6; i++ {
		if got := sql(t, "SELECT getSetting('max_threads') != 5"); got != "1\n" {
			t.Fatalf("max_threads leaked: %q", got)
		}
	}
}

func TestDatabasePerStatement(t *testing.T) {
	sql(t, "CREATE DATABASE IF NOT EXISTS db_scope")
	got := query(t, Statement{Query: []byte("SELECT currentDatabase()"), Database: "db_scope"})
	if got != "db_scope\n" {
		t.Fatalf("currentDatabase = %q", got)
	}
	for i := 0; i < 6; i++ {
		if got := sql(t, "SELECT currentDatabase()"); got != "default\n" {
			t.Fatalf("database leaked: %q", got)
		}
	}
	_, err := testEngine.Do(context.Background(), Statement{Query: []byte("SELECT 1"), Database: "nope"})
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeUnknownDatabase {
		t.Fatalf("err = %v, want code %d", err, CodeUnknownDatabase)
	}
}

// nativeBlock encodes a revision-0 Native block of cols UInt8 columns.
func nativeBlock(t *testing.T, cols, rows int, first byte) []byte {
	t.Helper()
	var input proto.Input
	for c := 0; c < cols; c++ {
		col := new(proto.ColUInt8)
		for r := 0; r < rows; r++ {
			col.Append(first + byte(r))
		}
		input = append(input, proto.InputColumn{Name: fmt.Sprintf("c%d", c), Data: col})
	}
	var buf proto.Buffer
	b := proto.Block{Columns: cols, Rows: rows}
	if err := b.EncodeRawBlock(&buf, 0, input); err != nil {
		t.Fatal(err)
	}
	return buf.Buf
}

func TestNativeInsert(t *testing.T) {
	// The body's first byte is its column count, so 9, 10, 12, 13 and 32
	// columns make it a tab, newline, form feed, carriage return or space,
	// and 0x0C 0x0D ... data bytes follow: none may be taken for whitespace.
	// Values 10, 10 make an empty line inside the data.
	for _, cols := range []int{1, 9, 10, 12, 13, 32, 59} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			var def []string
			for c := 0; c < cols; c++ {
				def = append(def, fmt.Sprintf("c%d UInt8", c))
			}
			table := fmt.Sprintf("native_%d", cols)
			sql(t, fmt.Sprintf("CREATE TABLE %s (%s) ENGINE = MergeTree ORDER BY tuple()", table, strings.Join(def, ", ")))
			for _, first := range []byte{0x0C, 0x0A} {
				res, err := testEngine.Do(context.Background(), Statement{
					Query: []byte("INSERT INTO " + table + " FORMAT Native"),
					Input: nativeBlock(t, cols, 3, first),
				})
				if err != nil {
					t.Fatal(err)
				}
				if res.RowsWritten != 3 {
					t.Errorf("rows written = %d", res.RowsWritten)
				}
			}
			got := sql(t, fmt.Sprintf("SELECT count(), sum(c0), min(c%d) FROM %s", cols-1, table))
			if got != "6\t72\t10\n" {
				t.Fatalf("got %q", got)
			}
		})
	}
	entries, err := os.ReadDir(testEngine.inputDir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("input files left behind: %v %v", entries, err)
	}
}

func TestInsertInputColumnList(t *testing.T) {
	sql(t, "CREATE TABLE input_cols (a UInt8, b UInt8 DEFAULT 42, c0 UInt8) ENGINE = MergeTree ORDER BY tuple()")
	_, err := testEngine.Do(context.Background(), Statement{
		Query:    []byte("INSERT INTO input_cols (c0) SETTINGS max_threads = 1 FORMAT Native"),
		Input:    nativeBlock(t, 1, 2, 5),
		Settings: map[string]string{"insert_deduplicate": "0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sql(t, "SELECT a, b, c0 FROM input_cols ORDER BY c0"); got != "0\t42\t5\n0\t42\t6\n" {
		t.Fatalf("got %q", got)
	}
	_, err = testEngine.Do(context.Background(), Statement{Query: []byte("SELECT 1"), Input: []byte{1}})
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeSyntaxError {
		t.Fatalf("Input on a SELECT: %v", err)
	}
}

func TestInlineDataEndsAtEmptyLine(t *testing.T) {
	// Why Statement.Input exists. If this starts failing, the engine no
	// longer cuts inline data at an empty line.
	sql(t, "CREATE TABLE inline_nn (c0 UInt8) ENGINE = MergeTree ORDER BY tuple()")
	q := append([]byte("INSERT INTO inline_nn FORMAT Native\n"), nativeBlock(t, 1, 3, 0x0A)...)
	q[len(q)-2] = 0x0A // rows 0 and 1 are 0x0A 0x0A: an empty line
	_, err := testEngine.Query(context.Background(), q, "TSV", nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != 33 {
		t.Fatalf("inline data with an empty line: err = %v, want code 33 CANNOT_READ_ALL_DATA", err)
	}
}

func TestLargeNativeInsert(t *testing.T) {
	sql(t, "CREATE TABLE big (c0 UInt8, c1 UInt8) ENGINE = MergeTree ORDER BY tuple()")
	_, err := testEngine.Do(context.Background(), Statement{
		Query: []byte("INSERT INTO big FORMAT Native"),
		Input: nativeBlock(t, 2, 2_000_000, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sql(t, "SELECT count() FROM big"); got != "2000000\n" {
		t.Fatalf("count = %q", got)
	}
}

func TestEmptyNativeResult(t *testing.T) {
	res, err := testEngine.Query(context.Background(), []byte("SELECT number FROM numbers(0)"), "Native", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 0 {
		t.Fatalf("the engine now writes %d bytes for an empty Native result; chstore can drop its workaround", len(res.Data))
	}
}

func TestConcurrent(t *testing.T) {
	sql(t, "CREATE TABLE conc (g UInt32, v UInt64) ENGINE = MergeTree ORDER BY g")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				q := fmt.Sprintf("INSERT INTO conc SELECT %d, number FROM numbers(100)", g)
				if _, err := testEngine.Query(context.Background(), []byte(q), "TSV", nil); err != nil {
					errs <- err
					return
				}
				res, err := testEngine.Query(context.Background(),
					[]byte("SELECT count() FROM conc WHERE g = {g:UInt32}"), "TSV", map[string]string{"g": fmt.Sprint(g)})
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf("%d\n", (i+1)*100); string(res.Data) != want {
					errs <- fmt.Errorf("goroutine %d: count %q, want %q", g, res.Data, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestContextEndsWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := testEngine.Query(ctx, []byte("SELECT sleep(1)"), "TSV", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("returned after %v", d)
	}
}

func TestMultiStatementRefused(t *testing.T) {
	_, err := testEngine.Query(context.Background(), []byte("SELECT 1; SELECT 2"), "TSV", nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeSyntaxError {
		t.Fatalf("err = %v, want code %d", err, CodeSyntaxError)
	}
}

func TestOpenSecondDataDirRefused(t *testing.T) {
	_, err := Open(Config{DataDir: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "already open") {
		t.Fatalf("err = %v", err)
	}
}

func TestInspect(t *testing.T) {
	tests := []struct {
		in   string
		want Shape
	}{
		{"SELECT 1", Shape{Keyword: "SELECT"}},
		{"  -- c\n set x=1", Shape{Keyword: "SET"}},
		{"/* a */ /* b */USE db", Shape{Keyword: "USE"}},
		{"(SELECT 1)", Shape{Keyword: "SELECT"}},
		{"# c\nINSERT", Shape{Keyword: "INSERT"}},
		{"/* open", Shape{}},
		{"", Shape{}},
		{"SELECT 1;", Shape{Keyword: "SELECT"}},
		{"SELECT 1; -- done\n", Shape{Keyword: "SELECT"}},
		{"SELECT 1; SELECT 2", Shape{Keyword: "SELECT", Multi: true}},
		{"SELECT ';', `a;b`, \"c;\" FROM t", Shape{Keyword: "SELECT"}},
		{"SELECT 'it''s; \\'; x' FROM t", Shape{Keyword: "SELECT"}},
		{"SELECT 1 FORMAT JSONEachRow", Shape{Keyword: "SELECT", Format: "JSONEachRow", FormatOffset: 9}},
		{"SELECT 1 FORMAT JSON SETTINGS max_threads = 1", Shape{Keyword: "SELECT", Format: "JSON", FormatOffset: 9}},
		{"SELECT format FROM t", Shape{Keyword: "SELECT"}},
		{"SELECT (SELECT 1 FORMAT CSV)", Shape{Keyword: "SELECT"}},
		{"INSERT INTO t FORMAT Native\n;\x00", Shape{Keyword: "INSERT", Format: "Native", FormatOffset: 14, DataOffset: 28}},
		// Without a newline all whitespace goes, a leading 0x0C data byte too.
		{"INSERT INTO t FORMAT Native  \x0c", Shape{Keyword: "INSERT", Format: "Native", FormatOffset: 14, DataOffset: 30}},
		{"INSERT INTO t VALUES (';'); SET x = 1", Shape{Keyword: "INSERT", Multi: true}},
	}
	for _, tt := range tests {
		if got := Inspect([]byte(tt.in)); got != tt.want {
			t.Errorf("Inspect(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestEscapeParam(t *testing.T) {
	if got := EscapeParam("a\\b\tc\nd\re\x00f"); got != `a\\b\tc\nd\re\0f` {
		t.Fatalf("got %q", got)
	}
	if !bytes.Equal([]byte(EscapeParam("中文")), []byte("中文")) {
		t.Fatal("non-ASCII changed")
	}
}

// BenchmarkStatementWithDeadline runs a trivial statement carrying
// max_execution_time, as nearly every statement of the product does (the
// client turns its context's deadline into it): what a statement costs
// beyond its own work.
func BenchmarkStatementWithDeadline(b *testing.B) {
	st := Statement{Query: []byte("SELECT 1"), Settings: map[string]string{"max_execution_time": "14"}}
	for b.Loop() {
		if _, err := testEngine.Do(context.Background(), st); err != nil {
			b.Fatal(err)
		}
	}
}
