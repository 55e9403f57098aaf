package chdb

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The package ships no chdb.h, so the few types of the C API it uses are
// declared here, as the engine's public header defines them.
typedef struct cockpit_chdb_conn_ { void *internal_data; } *cockpit_chdb_connection;
typedef struct cockpit_chdb_result_ { void *internal_data; } cockpit_chdb_result;

typedef struct {
	cockpit_chdb_connection *(*connect)(int, char **);
	void (*close_conn)(cockpit_chdb_connection *);
	cockpit_chdb_result *(*query_n)(cockpit_chdb_connection, const char *, size_t, const char *, size_t);
	cockpit_chdb_result *(*query_params_n)(cockpit_chdb_connection, const char *, size_t, const char *, size_t,
		const char *const *, const size_t *, const char *const *, const size_t *, size_t);
	void (*destroy)(cockpit_chdb_result *);
	char *(*buffer)(cockpit_chdb_result *);
	size_t (*length)(cockpit_chdb_result *);
	const char *(*error)(cockpit_chdb_result *);
	uint64_t (*rows_read)(cockpit_chdb_result *);
	uint64_t (*bytes_read)(cockpit_chdb_result *);
	uint64_t (*rows_written)(cockpit_chdb_result *);
	uint64_t (*bytes_written)(cockpit_chdb_result *);
	double (*elapsed)(cockpit_chdb_result *);
	// Optional: absent from older engines.
	void (*set_signal_handlers_enabled)(int);
} cockpit_chdb_api;

static cockpit_chdb_api cockpit_api;

// cockpit_chdb_load opens the library and resolves every symbol. It returns
// NULL on success or a static/dlerror message naming what failed.
static const char *cockpit_chdb_load(const char *path, char *missing, size_t missing_len) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		return dlerror();
	}
	cockpit_chdb_api a;
	memset(&a, 0, sizeof a);
#define COCKPIT_SYM(field, name)                          \
	do {                                                  \
		*(void **)(&a.field) = dlsym(h, name);            \
		if (a.field == NULL) {                            \
			snprintf(missing, missing_len, "%s", name);   \
			return "missing symbol";                      \
		}                                                 \
	} while (0)
	COCKPIT_SYM(connect, "chdb_connect");
	COCKPIT_SYM(close_conn, "chdb_close_conn");
	COCKPIT_SYM(query_n, "chdb_query_n");
	COCKPIT_SYM(query_params_n, "chdb_query_with_params_n");
	COCKPIT_SYM(destroy, "chdb_destroy_query_result");
	COCKPIT_SYM(buffer, "chdb_result_buffer");
	COCKPIT_SYM(length, "chdb_result_length");
	COCKPIT_SYM(error, "chdb_result_error");
	COCKPIT_SYM(rows_read, "chdb_result_rows_read");
	COCKPIT_SYM(bytes_read, "chdb_result_bytes_read");
	COCKPIT_SYM(rows_written, "chdb_result_rows_written");
	COCKPIT_SYM(bytes_written, "chdb_result_bytes_written");
	COCKPIT_SYM(elapsed, "chdb_result_elapsed");
#undef COCKPIT_SYM
	*(void **)(&a.set_signal_handlers_enabled) = dlsym(h, "chdb_set_signal_handlers_enabled");
	// The handle is never closed: unloading a C++ runtime that owns threads
	// is not safe, and the engine lives for the rest of the process anyway.
	cockpit_api = a;
	return NULL;
}

// cockpit_chdb_connect calls chdb_connect without letting the engine keep
// any signal disposition it changes. The Go runtime depends on its own
// handlers (SIGSEGV for nil-pointer panics, SIGURG for preemption, ...) and
// on SA_ONSTACK; the engine installs crash handlers for SIGSEGV, SIGBUS,
// SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS, SIGTSTP and SIGRTMIN during the
// first connect, and chdb_set_signal_handlers_enabled(0) resets the deadly
// ones to SIG_DFL instead. Either would break the runtime, so every
// disposition is snapshotted before and put back after. The calling thread's
// signal mask is restored too: the engine blocks SIGPIPE on it.
//
// *restored receives how many dispositions had to be put back.
static cockpit_chdb_connection *cockpit_chdb_connect(int argc, char **argv, int *restored) {
	struct sigaction saved[65];
	int have[65];
	sigset_t mask;
	int s;
	for (s = 1; s < 65; s++) {
		have[s] = sigaction(s, NULL, &saved[s]) == 0;
	}
	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	if (cockpit_api.set_signal_handlers_enabled != NULL) {
		cockpit_api.set_signal_handlers_enabled(0);
	}
	cockpit_chdb_connection *conn = cockpit_api.connect(argc, argv);
	*restored = 0;
	for (s = 1; s < 65; s++) {
		struct sigaction now;
		if (!have[s] || sigaction(s, NULL, &now) != 0) {
			continue;
		}
		// SA_RESTORER is added by glibc on every sigaction call; it is not
		// a change anybody made.
		int flags_now = now.sa_flags & ~0x04000000;
		int flags_then = saved[s].sa_flags & ~0x04000000;
		if (now.sa_handler != saved[s].sa_handler || flags_now != flags_then) {
			sigaction(s, &saved[s], NULL);
			(*restored)++;
		}
	}
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	return conn;
}

static void cockpit_chdb_close(cockpit_chdb_connection *conn) {
	cockpit_api.close_conn(conn);
}

typedef struct {
	cockpit_chdb_result *res;
	const char *data;
	size_t len;
	const char *err;
	uint64_t rows_read, bytes_read, rows_written, bytes_written;
	double elapsed;
} cockpit_chdb_out;

// cockpit_chdb_query runs one statement and fills out; one cgo call per
// query instead of ten. out->res must be freed with cockpit_chdb_free.
static void cockpit_chdb_query(cockpit_chdb_connection *conn, const char *q, size_t qlen, const char *fmt, size_t flen,
	const char *const *names, const size_t *name_lens, const char *const *values, const size_t *value_lens, size_t n,
	cockpit_chdb_out *out) {
	cockpit_chdb_result *r;
	if (n == 0) {
		r = cockpit_api.query_n(*conn, q, qlen, fmt, flen);
	} else {
		r = cockpit_api.query_params_n(*conn, q, qlen, fmt, flen, names, name_lens, values, value_lens, n);
	}
	memset(out, 0, sizeof *out);
	out->res = r;
	if (r == NULL) {
		return;
	}
	out->err = cockpit_api.error(r);
	out->data = cockpit_api.buffer(r);
	out->len = cockpit_api.length(r);
	out->rows_read = cockpit_api.rows_read(r);
	out->bytes_read = cockpit_api.bytes_read(r);
	out->rows_written = cockpit_api.rows_written(r);
	out->bytes_written = cockpit_api.bytes_written(r);
	out->elapsed = cockpit_api.elapsed(r);
}

static void cockpit_chdb_free(cockpit_chdb_result *r) {
	if (r != NULL) {
		cockpit_api.destroy(r);
	}
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"
)

// loaded records which library the process has dlopen'ed: a process can hold
// only one engine, so a second, different path is an error rather than a
// silent second copy of ClickHouse.
var loaded struct {
	sync.Mutex
	path string
}

// allocatorEnv configures the engine's allocator, a jemalloc built into
// the library that reads this variable (not MALLOC_CONF) when it starts.
const allocatorEnv = "JE_MALLOC_CONF"

// allocatorDefault is allocatorEnv unless the environment sets it. The
// engine's own configuration keeps memory its queries freed for 5 s
// before giving it back (dirty_decay_ms), with no background thread, so a
// run of large statements (a rollup build in parts) stacked each one's
// peak on what the last had freed: rebuilding hours of 467k and 667k
// events on an idle process took it 300 MB above its base at 5 s, 240 MB
// at 1 s in the same time, 210 MB at none, which made the builds almost
// 80 % slower (1.6 → 2.9 s and 2.4 → 4.3 s). An operator's
// JE_MALLOC_CONF wins.
const allocatorDefault = "dirty_decay_ms:1000"

// load dlopens the library at path once per process.
func load(path string) error {
	loaded.Lock()
	defer loaded.Unlock()
	if loaded.path != "" {
		if loaded.path != path {
			return fmt.Errorf("cannot load %s: this process already loaded the engine from %s", path, loaded.path)
		}
		return nil
	}
	if os.Getenv(allocatorEnv) == "" {
		// Read by the engine's allocator when the library loads.
		if err := os.Setenv(allocatorEnv, allocatorDefault); err != nil {
			return fmt.Errorf("cannot set %s: %w", allocatorEnv, err)
		}
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var missing [128]C.char
	if msg := C.cockpit_chdb_load(cpath, &missing[0], C.size_t(len(missing))); msg != nil {
		if m := C.GoString(&missing[0]); m != "" {
			return fmt.Errorf("cannot load %s: %s %s (not a chDB %s library?)", path, C.GoString(msg), m, Version)
		}
		return fmt.Errorf("cannot load %s: %s", path, C.GoString(msg))
	}
	loaded.path = path
	return nil
}

// cconn is one engine connection: a session with its own settings and
// current database that runs one statement at a time.
type cconn struct {
	ptr *C.cockpit_chdb_connection
}

// connect opens a connection with argv (argv[0] is the program name). It
// returns how many signal dispositions had to be restored, for logging.
func connect(argv []string) (*cconn, int, error) {
	cargv := make([]*C.char, len(argv))
	for i, a := range argv {
		cargv[i] = C.CString(a)
	}
	defer func() {
		for _, p := range cargv {
			C.free(unsafe.Pointer(p))
		}
	}()
	// The pointer array itself must live in C memory: cgo forbids passing Go
	// memory that holds pointers.
	arr := (**C.char)(C.malloc(C.size_t(len(cargv)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(arr))
	copy(unsafe.Slice(arr, len(cargv)), cargv)
	var restored C.int
	ptr := C.cockpit_chdb_connect(C.int(len(cargv)), arr, &restored)
	if ptr == nil {
		return nil, int(restored), errors.New("chdb_connect failed (data directory unusable, already used by another process, or an invalid engine argument)")
	}
	return &cconn{ptr: ptr}, int(restored), nil
}

func (c *cconn) close() {
	if c.ptr != nil {
		C.cockpit_chdb_close(c.ptr)
		c.ptr = nil
	}
}

// rawResult is what one statement produced, copied into Go memory.
type rawResult struct {
	data     []byte
	errText  string
	hasError bool
	stats    Stats
}

// query runs one statement. The query text, format and parameters are copied
// into a single C allocation so that no Go memory is referenced by the engine
// and so that callers may reuse their buffers as soon as this returns.
func (c *cconn) query(query []byte, format string, params map[string]string) (rawResult, error) {
	size := len(query) + len(format)
	for k, v := range params {
		size += len(k) + len(v)
	}
	// One extra byte keeps the allocation non-empty.
	block := C.malloc(C.size_t(size + 1))
	if block == nil {
		return rawResult{}, fmt.Errorf("cannot allocate %d bytes for the query", size)
	}
	defer C.free(block)
	mem := unsafe.Slice((*byte)(block), size+1)
	off := 0
	put := func(b []byte) (*C.char, C.size_t) {
		p := (*C.char)(unsafe.Pointer(&mem[off]))
		off += copy(mem[off:], b)
		return p, C.size_t(len(b))
	}
	qp, ql := put(query)
	fp, fl := put([]byte(format))

	var (
		names, values       **C.char
		nameLens, valueLens *C.size_t
		n                   = len(params)
	)
	if n > 0 {
		ptrSize := C.size_t(unsafe.Sizeof(uintptr(0)))
		lenSize := C.size_t(unsafe.Sizeof(C.size_t(0)))
		arrays := C.malloc(C.size_t(n) * 2 * (ptrSize + lenSize))
		if arrays == nil {
			return rawResult{}, fmt.Errorf("cannot allocate parameter arrays for %d parameters", n)
		}
		defer C.free(arrays)
		ptrs := unsafe.Slice((**C.char)(arrays), 2*n)
		lens := unsafe.Slice((*C.size_t)(unsafe.Add(arrays, uintptr(2*n)*uintptr(ptrSize))), 2*n)
		i := 0
		for k, v := range params {
			ptrs[i], lens[i] = put([]byte(k))
			ptrs[n+i], lens[n+i] = put([]byte(v))
			i++
		}
		names, values = &ptrs[0], &ptrs[n]
		nameLens, valueLens = &lens[0], &lens[n]
	}

	var out C.cockpit_chdb_out
	C.cockpit_chdb_query(c.ptr, qp, ql, fp, fl, names, nameLens, values, valueLens, C.size_t(n), &out)
	if out.res == nil {
		return rawResult{}, errors.New("engine returned no result")
	}
	defer C.cockpit_chdb_free(out.res)
	r := rawResult{
		stats: Stats{
			RowsRead:     uint64(out.rows_read),
			BytesRead:    uint64(out.bytes_read),
			RowsWritten:  uint64(out.rows_written),
			BytesWritten: uint64(out.bytes_written),
			Elapsed:      time.Duration(float64(out.elapsed) * float64(time.Second)),
		},
	}
	if out.err != nil {
		r.hasError = true
		r.errText = C.GoString(out.err)
		return r, nil
	}
	if out.len > 0 && out.data != nil {
		// Not C.GoBytes: its length is a C int, and results may exceed 2 GiB.
		r.data = make([]byte, int(out.len))
		copy(r.data, unsafe.Slice((*byte)(unsafe.Pointer(out.data)), int(out.len)))
	}
	return r, nil
}
