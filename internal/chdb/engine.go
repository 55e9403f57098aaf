package chdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config configures an Engine.
type Config struct {
	// LibPath is the libchdb.so to load. Default: Locate().
	LibPath string
	// DataDir holds the engine's databases; created if missing. Required.
	// One process per directory.
	DataDir string
	// Connections is the pool size, i.e. how many statements run at once.
	// Default: the number of CPUs, at least 2.
	Connections int
	// Args are extra engine arguments appended to argv after --path, e.g.
	// "--logger.level=warning". Only server-level options belong here:
	// query-level settings given as arguments do not reach the sessions
	// (measured on 26.5.3); use Settings for those.
	Args []string
	// Settings are applied with SET to every connection when it opens, and a
	// per-statement override returns to this value before a statement that
	// does not set it, e.g.
	// {"max_memory_usage": "8000000000"}.
	Settings map[string]string
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("chdb: DataDir is required")
	}
	if c.Connections < 0 {
		return fmt.Errorf("chdb: Connections must be positive, got %d", c.Connections)
	}
	for name := range c.Settings {
		if !settingName.MatchString(name) {
			return fmt.Errorf("chdb: invalid setting name %q", name)
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--path") {
			return errors.New("chdb: set DataDir instead of passing --path in Args")
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Connections == 0 {
		c.Connections = max(2, runtime.NumCPU())
	}
	return c
}

// engineDefaults are the server options the engine runs with unless Args
// sets them. The memory worker corrects the engine's memory accounting
// from the process's resident size; at its own default period (50 or
// 100 ms) it was the busiest thread of an idle process (0.0018 core of
// 0.022 measured), and a second is soon enough for a tracker that each
// allocation also keeps.
var engineDefaults = []string{"--memory_worker_period_ms=1000"}

// defaultArgs returns the engineDefaults that args does not set.
func defaultArgs(args []string) []string {
	var out []string
	for _, d := range engineDefaults {
		name, _, _ := strings.Cut(d, "=")
		if !slices.ContainsFunc(args, func(a string) bool { return a == name || strings.HasPrefix(a, name+"=") }) {
			out = append(out, d)
		}
	}
	return out
}

// Stats are the engine's counters for one statement.
type Stats struct {
	RowsRead     uint64
	BytesRead    uint64
	RowsWritten  uint64
	BytesWritten uint64
	Elapsed      time.Duration
}

// Result is the output of one statement.
type Result struct {
	// Data is the output in the requested format; empty for statements
	// without output, and for a SELECT returning no rows in Native format
	// (the engine writes no header block then).
	Data []byte
	Stats
}

// Statement is one query with everything that scopes it.
type Statement struct {
	// Query is the SQL text; for INSERT ... FORMAT <fmt> it may carry the
	// binary data after the format name and a newline.
	Query []byte
	// Format is the default output format. Default: "TabSeparated". A
	// FORMAT clause in the query wins.
	Format string
	// Params bind {name:Type} placeholders. Values are text in TSV-escaped
	// form, exactly as the ClickHouse HTTP interface takes param_<name>:
	// use EscapeParam for a raw string.
	Params map[string]string
	// Settings apply to this statement only.
	Settings map[string]string
	// Database is the current database for this statement. Default:
	// "default".
	Database string
	// Input is the data of an INSERT whose text ends with FORMAT <name>.
	// It reaches the engine through a temporary file read by the file()
	// table function rather than inline after the query text: the engine
	// parses its input as several statements and ends inline data at the
	// first empty line ("\n\n"), which binary formats contain at random
	// (the UInt64 2570 is 0A 0A 00 ...). It is also about ten times faster
	// (30 ms against 300 ms for 30 MB of Native). Columns are matched by
	// position: the INSERT's column list, else the table's insertable
	// columns in order, which is what clickhouse-go sends.
	Input []byte
}

// inputParam names the parameter carrying Input's file path.
const inputParam = "cockpit_input_path"

// settingName is what a ClickHouse setting name looks like; anything else is
// refused before it reaches SET text.
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

const defaultDatabase = "default"

// baseSettings are applied to every connection before Config.Settings.
// The query profilers fire SIGUSR1/SIGUSR2 at engine threads; the Go runtime
// owns those signals, so they stay off. implicit_select, on in
// clickhouse-local, would run "SELEKT" as SELECT SELEKT (error 47 instead of
// a server's 62 SYNTAX_ERROR): off, so the embedded store answers like a
// server.
var baseSettings = map[string]string{
	"implicit_select":                    "0",
	"query_profiler_real_time_period_ns": "0",
	"query_profiler_cpu_time_period_ns":  "0",
}

// engineOwner makes "one engine per process" explicit: a second Open with a
// different data directory while one is open would silently reboot the
// engine under the first.
var engineOwner struct {
	sync.Mutex
	dir  string
	refs int
}

// Engine is an embedded ClickHouse engine with a pool of connections.
// It is safe for concurrent use.
type Engine struct {
	cfg    Config
	logger *slog.Logger
	dir    string
	argv   []string
	// inputDir holds Statement.Input files while their INSERT runs.
	inputDir string

	// idle holds the connections not running a statement.
	idle chan *conn
	// done is closed by Close; inflight counts statements running, so Close
	// can wait for them before closing connections.
	done      chan struct{}
	closeOnce sync.Once
	inflight  sync.WaitGroup
	mu        sync.Mutex // guards closed and inflight.Add against Close
	closed    bool
}

// conn is a pooled engine connection and the session state it carries.
type conn struct {
	c *cconn
	// db is the connection's current database; "" when unknown.
	db string
	// set holds the settings of the last statement on this connection,
	// still applied over its connection-level values (see applySettings).
	set map[string]string
}

// Open loads the library and opens cfg.Connections connections to
// cfg.DataDir. All connections are opened here, not lazily: connecting is
// the one moment the engine touches signal handlers (see capi.go), and doing
// it before serving keeps that window away from a busy process.
func Open(cfg Config, logger *slog.Logger) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LibPath == "" {
		p, err := Locate()
		if err != nil {
			return nil, err
		}
		cfg.LibPath = p
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve data directory %s: %w", cfg.DataDir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create data directory: %w", err)
	}
	if err := load(cfg.LibPath); err != nil {
		return nil, err
	}
	// Left-overs of a crash are useless: the INSERTs they fed have failed.
	inputDir := filepath.Join(dir, "cockpit_input")
	if err := os.RemoveAll(inputDir); err != nil {
		return nil, fmt.Errorf("cannot clear %s: %w", inputDir, err)
	}
	if err := os.Mkdir(inputDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", inputDir, err)
	}

	engineOwner.Lock()
	defer engineOwner.Unlock()
	if engineOwner.refs > 0 && engineOwner.dir != dir {
		return nil, fmt.Errorf("cannot open %s: the engine of this process is already open on %s", dir, engineOwner.dir)
	}

	e := &Engine{
		cfg:      cfg,
		logger:   logger,
		dir:      dir,
		inputDir: inputDir,
		argv:     append(append([]string{"clickhouse", "--path=" + dir}, defaultArgs(cfg.Args)...), cfg.Args...),
		idle:     make(chan *conn, cfg.Connections),
		done:     make(chan struct{}),
	}
	start := time.Now()
	for i := 0; i < cfg.Connections; i++ {
		c, err := e.connect()
		if err != nil {
			e.closeIdle()
			return nil, fmt.Errorf("cannot open engine connection %d of %d on %s: %w", i+1, cfg.Connections, dir, err)
		}
		e.idle <- c
	}
	engineOwner.dir = dir
	engineOwner.refs++
	logger.Info("chdb engine open", "data_dir", dir, "lib", cfg.LibPath, "connections", cfg.Connections,
		"took", time.Since(start).Round(time.Millisecond))
	return e, nil
}

// connect opens one connection and applies the connection-level settings.
func (e *Engine) connect() (*conn, error) {
	cc, restored, err := connect(e.argv)
	if err != nil {
		return nil, err
	}
	if restored > 0 {
		e.logger.Debug("chdb restored signal handlers changed by the engine", "count", restored)
	}
	c := &conn{c: cc, db: defaultDatabase}
	settings := maps.Clone(baseSettings)
	maps.Copy(settings, e.cfg.Settings)
	if err := c.exec(setStatement(settings)); err != nil {
		cc.close()
		return nil, fmt.Errorf("cannot apply connection settings: %w", err)
	}
	return c, nil
}

// Query runs one statement with the default database and no settings.
// See Do.
func (e *Engine) Query(ctx context.Context, query []byte, format string, params map[string]string) (*Result, error) {
	return e.Do(ctx, Statement{Query: query, Format: format, Params: params})
}

// Do runs one statement on a pooled connection.
//
// ctx bounds the wait for a free connection and the wait for the result. The
// engine's C API cannot interrupt a running statement, so when ctx ends first
// Do returns ctx's error at once and the statement finishes in the
// background, holding its connection until then; bound the work itself with
// the max_execution_time setting.
//
// An engine exception is returned as *Error.
func (e *Engine) Do(ctx context.Context, st Statement) (*Result, error) {
	if err := checkStatement(st); err != nil {
		return nil, err
	}
	if err := e.begin(); err != nil {
		return nil, err
	}
	var c *conn
	select {
	case c = <-e.idle:
	case <-ctx.Done():
		e.inflight.Done()
		return nil, fmt.Errorf("cannot get an engine connection: %w", context.Cause(ctx))
	case <-e.done:
		e.inflight.Done()
		return nil, ErrClosed
	}

	type outcome struct {
		res *Result
		err error
	}
	// Buffered: the worker never blocks on a caller that has gone.
	ch := make(chan outcome, 1)
	// The worker is owned by the Engine (inflight), not by the caller: it may
	// outlive Do when ctx ends, and Close waits for it.
	go func() {
		defer e.inflight.Done()
		res, err := e.run(c, st)
		ch <- outcome{res, err}
	}()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("abandoned waiting for the engine (the statement runs on): %w", context.Cause(ctx))
	}
}

// begin registers a statement unless the engine is closed.
func (e *Engine) begin() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.inflight.Add(1)
	return nil
}

// run executes st on c, scoping database and settings to it, and returns c
// to the pool (or a replacement when c's session state is in doubt).
func (e *Engine) run(c *conn, st Statement) (res *Result, err error) {
	healthy := true
	defer func() {
		if !healthy {
			c = e.replace(c)
		}
		if c != nil {
			e.idle <- c
		}
	}()

	db := st.Database
	if db == "" {
		db = defaultDatabase
	}
	if c.db != db {
		if err := c.exec("USE " + quoteIdent(db)); err != nil {
			return nil, err
		}
		c.db = db
	}
	if err := e.applySettings(c, st.Settings); err != nil {
		// A failed SET may have applied part of the list.
		healthy = e.resetSettings(c, c.set, st.Settings)
		c.set = nil
		return nil, err
	}

	format := st.Format
	if format == "" {
		format = "TabSeparated"
	}
	query, params := st.Query, st.Params
	if st.Input != nil {
		path, err := e.writeInput(st.Input)
		if err != nil {
			return nil, err
		}
		defer os.Remove(path)
		shape := Inspect(query)
		rewritten := make([]byte, 0, shape.FormatOffset+64+len(shape.Format))
		rewritten = append(rewritten, query[:shape.FormatOffset]...)
		rewritten = append(rewritten, " SELECT * FROM file({"+inputParam+":String}, "+quoteIdent(shape.Format)+")"...)
		query = rewritten
		params = maps.Clone(params)
		if params == nil {
			params = make(map[string]string, 1)
		}
		params[inputParam] = EscapeParam(path)
	}
	raw, err := c.c.query(query, format, params)
	if err != nil {
		healthy = false
		return nil, err
	}
	if raw.hasError {
		return nil, parseError(raw.errText)
	}
	return &Result{Data: raw.data, Stats: raw.stats}, nil
}

// writeInput stores data in a new file under the engine's input directory.
func (e *Engine) writeInput(data []byte) (string, error) {
	f, err := os.CreateTemp(e.inputDir, "insert-*.bin")
	if err != nil {
		return "", fmt.Errorf("cannot create an insert file: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("cannot write an insert file: %w", err)
	}
	return f.Name(), nil
}

// applySettings gives c the settings of the statement about to run: want
// over the connection-level values. A statement's settings stay on its
// connection after it ends, and the next statement's SET changes only what
// differs, returning the rest to the connection-level values: one SET at
// most per statement, none when it has the previous one's settings, where
// a SET before and another after cost two more calls into the engine per
// statement (nearly every statement of the product carries its deadline,
// max_execution_time). Every statement runs through here first, so none
// sees another's settings.
func (e *Engine) applySettings(c *conn, want map[string]string) error {
	if maps.Equal(c.set, want) {
		return nil
	}
	set := make(map[string]string, len(want))
	for name, v := range want {
		if cur, ok := c.set[name]; !ok || cur != v {
			set[name] = quoteString(v)
		}
	}
	for name := range c.set {
		if _, ok := want[name]; !ok {
			set[name] = e.connectionValue(name)
		}
	}
	// Not equal, so set names at least one setting.
	if err := c.exec(assignStatement(set)); err != nil {
		return err
	}
	c.set = maps.Clone(want)
	return nil
}

// connectionValue renders the connection-level value of a setting:
// Config.Settings, else baseSettings, else DEFAULT.
func (e *Engine) connectionValue(name string) string {
	if v, ok := e.cfg.Settings[name]; ok {
		return quoteString(v)
	}
	if v, ok := baseSettings[name]; ok {
		return quoteString(v)
	}
	return "DEFAULT"
}

// resetSettings returns the settings named in each map to their
// connection-level values, after a SET of applySettings failed (so they
// name at least one). It reports false when the session can no longer be
// trusted.
func (e *Engine) resetSettings(c *conn, names ...map[string]string) bool {
	reset := map[string]string{}
	for _, m := range names {
		for name := range m {
			reset[name] = e.connectionValue(name)
		}
	}
	if c.exec(assignStatement(reset)) == nil {
		return true
	}
	// One by one, so that an unknown name (which was never applied) does not
	// hide the others.
	for name, v := range reset {
		err := c.exec(assignStatement(map[string]string{name: v}))
		var ce *Error
		if err != nil && !(errors.As(err, &ce) && ce.Code == CodeUnknownSetting) {
			e.logger.Warn("chdb cannot reset a setting; replacing the connection", "setting", name, "error", err)
			return false
		}
	}
	return true
}

// replace closes c and opens a fresh connection in its place. The new one is
// opened first: closing the last connection would shut the engine down.
func (e *Engine) replace(c *conn) *conn {
	fresh, err := e.connect()
	if err != nil {
		// Keep the old one: a connection with a stray setting is better than
		// a pool that shrinks until it deadlocks.
		e.logger.Error("chdb cannot replace a connection; keeping the old one", "error", err)
		c.db = ""
		return c
	}
	c.c.close()
	return fresh
}

// exec runs an internal statement whose output is not needed.
func (c *conn) exec(query string) error {
	raw, err := c.c.query([]byte(query), "TabSeparated", nil)
	if err != nil {
		return err
	}
	if raw.hasError {
		return parseError(raw.errText)
	}
	return nil
}

// Close waits for running statements and closes every connection, which
// shuts the engine down. The library stays loaded; a later Open in the same
// process boots the engine again.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		close(e.done)
		e.inflight.Wait()
		e.closeIdle()
		engineOwner.Lock()
		engineOwner.refs--
		engineOwner.Unlock()
		e.logger.Info("chdb engine closed", "data_dir", e.dir)
	})
	return nil
}

// closeIdle closes the pooled connections.
func (e *Engine) closeIdle() {
	for {
		select {
		case c := <-e.idle:
			c.c.close()
		default:
			return
		}
	}
}

// checkStatement refuses what would corrupt a pooled session: SET and USE
// as statements would outlive the request on a shared connection, unlike on
// a ClickHouse server where an HTTP request without a session forgets them.
// Several statements in one text are refused as the server's HTTP interface
// does; the engine would run them all, and a trailing SET would slip past.
func checkStatement(st Statement) error {
	if st.Input != nil {
		shape := Inspect(st.Query)
		if shape.Keyword != "INSERT" || shape.Format == "" || shape.DataOffset < len(st.Query) {
			return &Error{Code: CodeSyntaxError, Message: "Input needs an INSERT whose text ends with FORMAT <name>. (SYNTAX_ERROR)"}
		}
		if _, ok := st.Params[inputParam]; ok {
			return &Error{Code: codeBadArguments, Message: "Parameter " + inputParam + " is reserved. (BAD_ARGUMENTS)"}
		}
	}
	for name := range st.Settings {
		if !settingName.MatchString(name) {
			return &Error{Code: codeBadArguments, Message: fmt.Sprintf("Invalid setting name %q. (BAD_ARGUMENTS)", name)}
		}
	}
	shape := Inspect(st.Query)
	if shape.Multi {
		return &Error{Code: CodeSyntaxError, Message: "Multi-statements are not allowed. (SYNTAX_ERROR)"}
	}
	switch kw := shape.Keyword; kw {
	case "SET", "USE":
		return &Error{
			Code:    codeUnsupportedMethod,
			Message: kw + " statements are not supported by the embedded engine: pass settings and the database per request instead. (UNSUPPORTED_METHOD)",
		}
	}
	return nil
}

const (
	codeUnsupportedMethod = 1
	codeBadArguments      = 36
)

// setStatement renders SET for settings; values become string literals,
// which ClickHouse converts to each setting's type as the HTTP interface
// does with URL parameters.
func setStatement(settings map[string]string) string {
	quoted := make(map[string]string, len(settings))
	for name, v := range settings {
		quoted[name] = quoteString(v)
	}
	return assignStatement(quoted)
}

// assignStatement renders SET name = value for each entry, in name order;
// the values are SQL already (a quoted literal, or DEFAULT).
func assignStatement(assign map[string]string) string {
	var b strings.Builder
	b.WriteString("SET ")
	for i, name := range slices.Sorted(maps.Keys(assign)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name)
		b.WriteString(" = ")
		b.WriteString(assign[name])
	}
	return b.String()
}

var (
	stringQuoter = strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	identQuoter  = strings.NewReplacer(`\`, `\\`, "`", "\\`")
)

func quoteString(s string) string { return "'" + stringQuoter.Replace(s) + "'" }

func quoteIdent(s string) string { return "`" + identQuoter.Replace(s) + "`" }
