package chstore

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/cockpit-cs/cockpit/internal/chdb"
)

// Engine runs statements; *chdb.Engine implements it.
type Engine interface {
	Do(ctx context.Context, st chdb.Statement) (*chdb.Result, error)
}

// Options tune a Handler.
type Options struct {
	// MaxRequestBytes caps a request body, before and after decompression.
	// Default: 1 GiB.
	MaxRequestBytes int64
	// Credentials are the accounts a query must authenticate as (required):
	// see LoadOrCreateCredentials.
	Credentials Credentials
}

const defaultMaxRequestBytes = 1 << 30

// interfaceParams are URL parameters of the HTTP interface itself; every
// other parameter, param_* aside, is a setting for the query.
var interfaceParams = map[string]bool{
	"query": true, "database": true, "default_format": true, "client_protocol_version": true,
	"compress": true, "decompress": true, "user": true, "password": true, "quota_key": true,
	"query_id": true, "session_id": true, "session_timeout": true, "session_check": true,
	"buffer_size": true, "wait_end_of_query": true, "role": true, "stacktrace": true,
}

// settingsAllowed are the settings a request may set in its URL: what the
// product and its client send, and limits that only narrow a query. Any
// other name (readonly, allow_*, paths, ...) is refused.
var settingsAllowed = map[string]bool{
	"insert_deduplicate": true, "insert_deduplication_token": true,
	"deduplicate_blocks_in_dependent_materialized_views": true,
	"async_insert": true, "wait_for_async_insert": true, "async_insert_deduplicate": true,
	"max_execution_time": true, "max_threads": true, "max_block_size": true, "max_insert_block_size": true,
	"max_result_rows": true, "max_result_bytes": true, "result_overflow_mode": true,
	"timeout_overflow_mode": true, "enable_http_compression": true, "http_zlib_compression_level": true,
	"network_compression_method": true, "session_timezone": true, "date_time_output_format": true,
	"date_time_input_format": true, "output_format_json_quote_64bit_integers": true,
	"join_use_nulls": true, "enable_analyzer": true, "distributed_foreground_insert": true,
	"send_progress_in_http_headers": true, "mutations_sync": true, "alter_sync": true,
	"select_sequential_consistency": true, "max_query_size": true,
}

// readOnlySettings are the URL settings the read-only account may set.
var readOnlySettings = map[string]bool{
	"max_execution_time": true, "max_threads": true, "max_block_size": true,
	"max_result_rows": true, "max_result_bytes": true, "result_overflow_mode": true,
	"timeout_overflow_mode": true, "enable_http_compression": true, "http_zlib_compression_level": true,
	"network_compression_method": true, "session_timezone": true, "date_time_output_format": true,
	"output_format_json_quote_64bit_integers": true,
}

// Handler serves ClickHouse's HTTP interface on top of an embedded engine,
// well enough for clickhouse-go/v2 with Protocol: clickhouse.HTTP, curl and
// other HTTP clients. Every query authenticates as one of two accounts
// (Options.Credentials); requests from web browsers are refused; and the
// guard (guard.go) keeps queries away from files, URLs, other hosts and
// programs.
type Handler struct {
	engine Engine
	logger *slog.Logger
	max    int64
	creds  Credentials

	// Server facts for response headers, read once from the engine.
	displayName, timezone string

	bufs sync.Pool // *proto.Buffer for transcoded results
}

// NewHandler returns a handler over engine. It asks the engine for its
// display name and time zone, so the engine must be open.
func NewHandler(ctx context.Context, engine Engine, opts Options, logger *slog.Logger) (*Handler, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = defaultMaxRequestBytes
	}
	if err := opts.Credentials.Validate(); err != nil {
		return nil, err
	}
	res, err := engine.Do(ctx, chdb.Statement{Query: []byte("SELECT displayName(), timezone()"), Format: "TabSeparated"})
	if err != nil {
		return nil, fmt.Errorf("cannot query the engine for server facts: %w", err)
	}
	name, tz, _ := strings.Cut(strings.TrimSpace(string(res.Data)), "\t")
	return &Handler{
		engine:      engine,
		logger:      logger,
		max:         opts.MaxRequestBytes,
		creds:       opts.Credentials,
		displayName: name,
		timezone:    tz,
		bufs:        sync.Pool{New: func() any { return new(proto.Buffer) }},
	}, nil
}

// request is a parsed HTTP-interface request.
type request struct {
	st        chdb.Statement
	queryID   string
	revision  int
	compress  bool   // compress=1: answer in ClickHouse's compressed blocks
	method    string // network_compression_method for compress=1
	httpComp  bool   // enable_http_compression=1
	acceptEnc string
}

// badRequest is a client error answered with 400 (or 413).
type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error {
	return &badRequest{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The liveness answers ("Ok.") tell nothing and need neither
	// credentials nor a client that is not a browser: Node's fetch, for
	// one, sends Sec-Fetch-Mode.
	switch r.URL.Path {
	case "/ping":
		h.ok(w, r)
		return
	case "/":
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !r.URL.Query().Has("query") {
			h.ok(w, r)
			return
		}
	default:
		h.fail(w, http.StatusNotFound, 0, fmt.Sprintf("There is no handler %s. (UNKNOWN_HANDLER)", r.URL.Path))
		return
	}
	if hdr, ok := browserRequest(r); ok {
		h.fail(w, http.StatusForbidden, codeAccessDenied,
			"Requests from web browsers are refused (the request carries "+hdr+"). (ACCESS_DENIED)")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		h.fail(w, http.StatusMethodNotAllowed, 0, "Method not allowed: use GET or POST. (BAD_ARGUMENTS)")
		return
	}
	acct := h.creds.authenticate(r)
	if acct == accountNone {
		w.Header().Set("WWW-Authenticate", `Basic realm="cockpit store", charset="UTF-8"`)
		h.fail(w, http.StatusUnauthorized, codeAuthenticationFailed,
			"Authentication failed: the user and password of the store's credentials file are required. (AUTHENTICATION_FAILED)")
		return
	}
	req, err := h.parse(w, r)
	if err == nil {
		err = checkRequest(req, acct == accountReader)
	}
	if err != nil {
		var rf *refused
		if errors.As(err, &rf) && rf.syntax {
			h.fail(w, http.StatusBadRequest, codeSyntaxError, rf.msg+". (SYNTAX_ERROR)")
			return
		}
		if errors.As(err, &rf) {
			h.fail(w, http.StatusForbidden, codeAccessDenied, rf.msg+". (ACCESS_DENIED)")
			return
		}
		var br *badRequest
		if errors.As(err, &br) {
			h.fail(w, br.status, codeBadArguments, br.msg+". (BAD_ARGUMENTS)")
			return
		}
		h.fail(w, http.StatusBadRequest, codeBadArguments, "Cannot read the request: "+err.Error()+". (BAD_ARGUMENTS)")
		return
	}
	h.serveQuery(w, r, req)
}

func (h *Handler) ok(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Content-Length", "4")
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, "Ok.\n")
	}
}

const (
	codeBadArguments         = 36
	codeSyntaxError          = 62
	codeAccessDenied         = 497
	codeAuthenticationFailed = 516
	codeStdException         = 1001
)

// checkRequest refuses settings outside the account's list and queries
// the guard refuses.
func checkRequest(req *request, readOnly bool) error {
	allowed := settingsAllowed
	if readOnly {
		allowed = readOnlySettings
	}
	for name := range req.st.Settings {
		if !allowed[name] {
			return refusef("Setting %s cannot be set on this endpoint", name)
		}
	}
	return checkQuery(req.st.Query, readOnly)
}

// fail writes an exception the way ClickHouse does: the code in a header and
// "Code: N. DB::Exception: ..." as the body.
func (h *Handler) fail(w http.ResponseWriter, status, code int, msg string) {
	body := fmt.Sprintf("Code: %d. DB::Exception: %s\n", code, msg)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=UTF-8")
	hdr.Set("X-ClickHouse-Exception-Code", strconv.Itoa(code))
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Del("Content-Encoding")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// parse reads the URL and the body into a request.
func (h *Handler) parse(w http.ResponseWriter, r *http.Request) (*request, error) {
	values := r.URL.Query()
	req := &request{
		queryID:   values.Get("query_id"),
		method:    "LZ4",
		acceptEnc: r.Header.Get("Accept-Encoding"),
	}
	req.st.Format = firstOf(values.Get("default_format"), r.Header.Get("X-ClickHouse-Format"), "TabSeparated")
	req.st.Database = firstOf(values.Get("database"), r.Header.Get("X-ClickHouse-Database"))
	if v := values.Get("client_protocol_version"); v != "" {
		rev, err := strconv.Atoi(v)
		if err != nil || rev < 0 {
			return nil, badf("Invalid client_protocol_version %q", v)
		}
		req.revision = rev
	}
	req.compress = values.Get("compress") == "1"
	decompress := values.Get("decompress") == "1"

	for name, vs := range values {
		if len(vs) == 0 {
			continue
		}
		v := vs[len(vs)-1]
		switch {
		case strings.HasPrefix(name, "param_"):
			if req.st.Params == nil {
				req.st.Params = make(map[string]string)
			}
			req.st.Params[strings.TrimPrefix(name, "param_")] = v
		case interfaceParams[name]:
		default:
			if req.st.Settings == nil {
				req.st.Settings = make(map[string]string)
			}
			req.st.Settings[name] = v
			switch name {
			case "network_compression_method":
				req.method = strings.ToUpper(v)
			case "enable_http_compression":
				req.httpComp = v == "1" || strings.EqualFold(v, "true")
			}
		}
	}

	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		return nil, badf("External tables (multipart requests) are not supported by the embedded store")
	}
	body, err := h.readBody(w, r, decompress)
	if err != nil {
		return nil, err
	}
	// As ClickHouse does, the body continues the query given in the URL,
	// after a newline; it is where INSERT ... FORMAT Native puts its data.
	text, data := []byte(values.Get("query")), body
	if len(text) == 0 {
		text, data = body, nil
	}
	shape := chdb.Inspect(text)
	if shape.Keyword == "INSERT" && shape.DataOffset > 0 && len(data) == 0 {
		text, data = text[:shape.DataOffset], text[shape.DataOffset:]
	}
	switch {
	case shape.Keyword == "INSERT" && strings.EqualFold(shape.Format, "Native") && len(data) > 0:
		// Binary data goes to the engine beside the query, not in its text
		// (see chdb.Statement.Input).
		req.st.Query = bytes.TrimRight(text, " \t\r\n")
		req.st.Input = data
	case len(data) > 0:
		req.st.Query = make([]byte, 0, len(text)+1+len(data))
		req.st.Query = append(append(append(req.st.Query, text...), '\n'), data...)
	default:
		req.st.Query = text
	}
	if len(bytes.TrimSpace(req.st.Query)) == 0 {
		return nil, badf("Empty query")
	}
	return req, nil
}

// readBody reads the body, undoing Content-Encoding and, with decompress=1,
// ClickHouse's block compression, within the size limit.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, decompress bool) ([]byte, error) {
	if r.Body == nil || r.Method == http.MethodGet {
		return nil, nil
	}
	var src io.Reader = http.MaxBytesReader(w, r.Body, h.max)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, badf("Cannot read gzip body: %v", err)
		}
		defer zr.Close()
		src = zr
	case "deflate":
		// ClickHouse's "deflate" is the zlib format, as clickhouse-go sends.
		zr, err := zlib.NewReader(src)
		if err != nil {
			return nil, badf("Cannot read deflate body: %v", err)
		}
		defer zr.Close()
		src = zr
	case "br":
		src = brotli.NewReader(src)
	case "zstd":
		zr, err := zstd.NewReader(src)
		if err != nil {
			return nil, badf("Cannot read zstd body: %v", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, badf("Unsupported Content-Encoding %q", enc)
	}
	if decompress {
		src = newBlockReader(src)
	}
	body, err := io.ReadAll(io.LimitReader(src, h.max+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || int64(len(body)) > h.max:
		return nil, &badRequest{status: http.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("Request body exceeds the limit of %d bytes", h.max)}
	case err != nil:
		return nil, badf("Cannot read the request body: %v", err)
	}
	return body, nil
}

func (h *Handler) serveQuery(w http.ResponseWriter, r *http.Request, req *request) {
	start := time.Now()
	res, err := h.engine.Do(r.Context(), req.st)
	if err != nil {
		var ce *chdb.Error
		switch {
		case errors.As(err, &ce):
			h.logger.Debug("chstore query failed", "code", ce.Code, "error", err)
			h.fail(w, http.StatusInternalServerError, ce.Code, ce.Message)
		case errors.Is(err, chdb.ErrClosed):
			h.fail(w, http.StatusServiceUnavailable, codeStdException, "The store is shutting down. (ABORTED)")
		case r.Context().Err() != nil:
			// The client has gone; nobody reads this.
			h.fail(w, http.StatusServiceUnavailable, codeStdException, "Request cancelled. (QUERY_WAS_CANCELLED)")
		default:
			h.logger.Error("chstore engine failure", "error", err)
			h.fail(w, http.StatusInternalServerError, codeStdException, err.Error()+". (STD_EXCEPTION)")
		}
		return
	}

	format := req.st.Format
	shape := chdb.Inspect(req.st.Query)
	if shape.Keyword != "INSERT" && shape.Format != "" {
		format = shape.Format
	}
	out := res.Data
	if strings.EqualFold(format, "Native") && req.revision > 0 && len(out) > 0 {
		buf := h.bufs.Get().(*proto.Buffer)
		defer func() {
			// Large buffers are not pooled: one huge result would pin its
			// memory for the life of the process.
			if cap(buf.Buf) <= 64<<20 {
				buf.Reset()
				h.bufs.Put(buf)
			}
		}()
		buf.Reset()
		if err := transcode(buf, out, req.revision); err != nil {
			h.logger.Error("chstore cannot re-encode a Native result", "error", err)
			h.fail(w, http.StatusInternalServerError, codeStdException,
				"Cannot re-encode the result for protocol revision "+strconv.Itoa(req.revision)+": "+err.Error()+". (STD_EXCEPTION)")
			return
		}
		out = buf.Buf
	}

	hdr := w.Header()
	hdr.Set("Content-Type", contentType(format))
	hdr.Set("X-ClickHouse-Format", format)
	hdr.Set("X-ClickHouse-Query-Id", firstOf(req.queryID, newQueryID()))
	hdr.Set("X-ClickHouse-Server-Display-Name", h.displayName)
	hdr.Set("X-ClickHouse-Timezone", h.timezone)
	hdr.Set("X-ClickHouse-Summary", summary(res, len(out), time.Since(start)))

	if req.compress {
		comp, err := compressBlocks(out, req.method)
		if err != nil {
			h.fail(w, http.StatusBadRequest, codeBadArguments, err.Error()+". (BAD_ARGUMENTS)")
			return
		}
		out = comp
	} else if req.httpComp && len(out) > 0 {
		if enc, comp, ok := httpCompress(out, req.acceptEnc); ok {
			hdr.Set("Content-Encoding", enc)
			out = comp
		}
	}
	hdr.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		if _, err := w.Write(out); err != nil {
			h.logger.Debug("chstore cannot write a response", "error", err)
		}
	}
}

// blockReader reads ClickHouse's compressed blocks (decompress=1) and
// reports io.EOF at the end of the last block; compress.Reader wraps that
// end as a "header: EOF" error like any other.
type blockReader struct {
	src      *countingReader
	blocks   *compress.Reader
	boundary int64 // source offset after the last complete block
}

func newBlockReader(r io.Reader) *blockReader {
	src := &countingReader{r: r}
	return &blockReader{src: src, blocks: compress.NewReader(src)}
}

func (b *blockReader) Read(p []byte) (int, error) {
	n, err := b.blocks.Read(p)
	if err != nil {
		if b.src.n == b.boundary && errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return n, io.EOF
		}
		return n, err
	}
	// compress.Reader reads whole blocks, so after a successful read the
	// source stands at a block boundary.
	b.boundary = b.src.n
	return n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// compressBlocks frames data in ClickHouse's compressed blocks (compress=1).
func compressBlocks(data []byte, method string) ([]byte, error) {
	var m compress.Method
	switch method {
	case "LZ4", "":
		m = compress.LZ4
	case "ZSTD":
		m = compress.ZSTD
	case "NONE":
		m = compress.None
	default:
		return nil, fmt.Errorf("unsupported network_compression_method %q", method)
	}
	var out []byte
	w := compress.NewWriter(compress.LevelZero, m)
	// A compressed block holds at most 1 GiB; stay well below it.
	const chunk = 1 << 20
	for len(data) > 0 {
		n := min(chunk, len(data))
		if err := w.Compress(data[:n]); err != nil {
			return nil, fmt.Errorf("cannot compress the result: %w", err)
		}
		out = append(out, w.Data...)
		data = data[n:]
	}
	return out, nil
}

// httpCompress applies the first encoding of Accept-Encoding it supports.
func httpCompress(data []byte, accept string) (string, []byte, bool) {
	for _, part := range strings.Split(accept, ",") {
		enc, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		var buf bytes.Buffer
		var zw io.WriteCloser
		switch strings.ToLower(enc) {
		case "gzip":
			zw = gzip.NewWriter(&buf)
		case "deflate":
			zw = zlib.NewWriter(&buf)
		case "br":
			zw = brotli.NewWriter(&buf)
		case "zstd":
			var err error
			if zw, err = zstd.NewWriter(&buf); err != nil {
				continue
			}
		default:
			continue
		}
		if _, err := zw.Write(data); err != nil {
			continue
		}
		if err := zw.Close(); err != nil {
			continue
		}
		return strings.ToLower(enc), buf.Bytes(), true
	}
	return "", nil, false
}

// summary renders X-ClickHouse-Summary; ClickHouse quotes the numbers.
func summary(res *chdb.Result, resultBytes int, elapsed time.Duration) string {
	s := map[string]string{
		"read_rows":          strconv.FormatUint(res.RowsRead, 10),
		"read_bytes":         strconv.FormatUint(res.BytesRead, 10),
		"written_rows":       strconv.FormatUint(res.RowsWritten, 10),
		"written_bytes":      strconv.FormatUint(res.BytesWritten, 10),
		"total_rows_to_read": "0",
		"result_rows":        "0",
		"result_bytes":       strconv.Itoa(resultBytes),
		"elapsed_ns":         strconv.FormatInt(elapsed.Nanoseconds(), 10),
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func contentType(format string) string {
	switch strings.ToLower(format) {
	case "native", "rowbinary", "rowbinarywithnamesandtypes", "parquet", "arrow", "arrowstream", "orc":
		return "application/octet-stream"
	case "json", "jsoncompact", "jsoneachrow", "jsonstrings", "jsoncompacteachrow":
		return "application/json; charset=UTF-8"
	case "tabseparated", "tsv", "tabseparatedwithnames", "tsvwithnames", "tabseparatedwithnamesandtypes", "tsvwithnamesandtypes":
		return "text/tab-separated-values; charset=UTF-8"
	case "csv", "csvwithnames":
		return "text/csv; charset=UTF-8; header=absent"
	default:
		return "text/plain; charset=UTF-8"
	}
}

// newQueryID returns a random UUID-shaped id, as ClickHouse generates.
func newQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
