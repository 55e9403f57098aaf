package chstore

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cockpit-cs/cockpit/internal/chdb"
)

// recordingEngine stands in for the engine behind the HTTP interface: it
// answers the server-facts query and records every other statement it is
// given, with an empty result.
type recordingEngine struct {
	mu    sync.Mutex
	calls []chdb.Statement
}

func (e *recordingEngine) Do(_ context.Context, st chdb.Statement) (*chdb.Result, error) {
	if string(st.Query) == "SELECT displayName(), timezone()" {
		return &chdb.Result{Data: []byte("cockpit\tUTC\n")}, nil
	}
	e.mu.Lock()
	e.calls = append(e.calls, st)
	e.mu.Unlock()
	return &chdb.Result{}, nil
}

// FuzzServeRequest feeds the endpoint arbitrary requests — URL query
// (query, database, default_format, client_protocol_version, compress,
// decompress, settings, param_* values), Content-Encoding, Content-Type and
// body — and checks what it hands the engine or answers instead: never a
// panic or a 5xx, every refusal a ClickHouse exception with its code, and
// every statement built faithfully from the request (param_<name> values
// as sent, no interface parameter taken for a setting, never an empty
// query).
func FuzzServeRequest(f *testing.F) {
	f.Add(false, "query=SELECT+1", "", "", []byte(nil))
	f.Add(true, "default_format=Native&client_protocol_version=54460&database=cockpit&param_region=%E5%B9%BF%E5%B7%9E",
		"", "text/plain", []byte("SELECT count() FROM events WHERE region = {region:String}"))
	f.Add(true, "query=INSERT+INTO+t+FORMAT+Native&insert_deduplication_token=a%2F0%2F1-2", "", "", []byte{1, 1, 1, 'a', 6, 'S', 't', 'r', 'i', 'n', 'g', 1, 'x'})
	f.Add(true, "compress=1&network_compression_method=zstd&enable_http_compression=1", "gzip", "", []byte("\x1f\x8b\x08\x00"))
	f.Add(true, "decompress=1", "", "", []byte("\x00\x01\x02"))
	f.Add(true, "client_protocol_version=-1", "br", "multipart/form-data; boundary=x", []byte("--x--"))
	e := &recordingEngine{}
	h, err := NewHandler(context.Background(), e, Options{MaxRequestBytes: 64 << 10, Credentials: testCreds}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, post bool, rawQuery, encoding, contentType string, body []byte) {
		method := http.MethodGet
		if post {
			method = http.MethodPost
		}
		r := httptest.NewRequest(method, "/", bytes.NewReader(body))
		r.URL.RawQuery = rawQuery
		r.SetBasicAuth(testCreds.User, testCreds.Password)
		if encoding != "" {
			r.Header.Set("Content-Encoding", encoding)
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		e.mu.Lock()
		e.calls = e.calls[:0]
		e.mu.Unlock()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		switch w.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusForbidden, http.StatusUnauthorized:
			if w.Header().Get("X-ClickHouse-Exception-Code") == "" || !strings.HasPrefix(w.Body.String(), "Code: ") {
				t.Fatalf("refusal %d without a ClickHouse exception: %q", w.Code, w.Body.String())
			}
		default:
			t.Fatalf("status %d: %q", w.Code, w.Body.String())
		}
		e.mu.Lock()
		calls := append([]chdb.Statement(nil), e.calls...)
		e.mu.Unlock()
		if len(calls) > 1 {
			t.Fatalf("one request ran %d statements", len(calls))
		}
		values := r.URL.Query()
		if len(calls) == 0 {
			// Nothing ran: only a refusal, or a GET / without a query
			// (the ping answer), may end so.
			if w.Code == http.StatusOK && (method != http.MethodGet || values.Has("query")) {
				t.Fatalf("answered 200 without running anything")
			}
			return
		}
		st := calls[0]
		if len(bytes.TrimSpace(st.Query)) == 0 {
			t.Fatalf("ran an empty query")
		}
		for name, vs := range values {
			if len(vs) == 0 {
				continue
			}
			last := vs[len(vs)-1]
			if p, ok := strings.CutPrefix(name, "param_"); ok {
				if got, ok := st.Params[p]; !ok || got != last {
					t.Fatalf("param %q = %q, %v; want %q", p, got, ok, last)
				}
				continue
			}
			if interfaceParams[name] {
				if _, ok := st.Settings[name]; ok {
					t.Fatalf("interface parameter %q passed to the engine as a setting", name)
				}
				continue
			}
			if got := st.Settings[name]; got != last {
				t.Fatalf("setting %q = %q, want %q", name, got, last)
			}
		}
		for name := range st.Settings {
			if strings.HasPrefix(name, "param_") || !values.Has(name) {
				t.Fatalf("setting %q was not asked for", name)
			}
		}
		if db := values.Get("database"); db != "" && st.Database != db {
			t.Fatalf("database = %q, want %q", st.Database, db)
		}
		if len(st.Input) > 0 {
			shape := chdb.Inspect(st.Query)
			if shape.Keyword != "INSERT" || !strings.EqualFold(shape.Format, "Native") {
				t.Fatalf("binary input beside a %s … FORMAT %s statement", shape.Keyword, shape.Format)
			}
		}
		if v := values.Get("client_protocol_version"); v != "" {
			if rev, err := strconv.Atoi(v); err != nil || rev < 0 {
				t.Fatalf("ran a statement for client_protocol_version %q", v)
			}
		}
	})
}
