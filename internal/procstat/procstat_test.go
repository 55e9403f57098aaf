package procstat

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// CPU agrees with the kernel's own account of this process (getrusage),
// read just before and after it, to the 10 ms of /proc's unit.
func TestCPUSelf(t *testing.T) {
	usage := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for x, until := 0, time.Now().Add(50*time.Millisecond); time.Now().Before(until); x++ {
		_ = x * x
	}
	before := usage()
	got, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	after := usage()
	if got < before-20*time.Millisecond || got > after+20*time.Millisecond {
		t.Errorf("CPU = %s, getrusage %s to %s", got, before, after)
	}
}

func TestPeakRSSSelf(t *testing.T) {
	got, err := PeakRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A Go test binary holds megabytes; more than a terabyte is a misread unit.
	if got < 1<<20 || got > 1<<40 {
		t.Errorf("PeakRSS = %d bytes", got)
	}
}

// A process that does not exist is an error, not a zero.
func TestMissingProcess(t *testing.T) {
	if _, err := CPU(-1); err == nil {
		t.Error("CPU(-1): no error")
	}
	if _, err := PeakRSS(-1); err == nil {
		t.Error("PeakRSS(-1): no error")
	}
}
