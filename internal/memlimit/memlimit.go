// Package memlimit holds the Go runtime's soft memory limit of a cockpit
// process, so the product and the benchmarks that measure its memory run
// under the same one.
package memlimit

import (
	"os"
	"runtime/debug"
)

// Default is the Go runtime's soft memory limit when GOMEMLIMIT is not
// set: the process (the embedded engine included) must stay under 1 GiB,
// and without a limit the heap grows to twice what a start-up backfill or
// a catching-up ingest holds at once. Two heap profiles of a demo's
// start-up found 153 and 178 MB in use; at 450 MiB the Go runtime kept up
// to 527 MB, about half the resident set, and the process peaked at
// 992-1078 MiB, at 384 MiB at 883-962 MiB. At the demo's busiest hour the
// heap holds about 190 MB live and is collected every 7 s.
const Default = 384 << 20

// Apply sets Default as the soft memory limit unless GOMEMLIMIT is set.
func Apply() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(Default)
	}
}
