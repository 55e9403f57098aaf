//go:build !unix

package kafkatest

import "os"

// Without flock, Restart cannot exclude other tests; the broker script is
// a bash script anyway, so integration tests run on unix only.

func lockShared(*os.File) error { return nil }

func tryLockExclusive(*os.File) (bool, error) { return true, nil }

func unlock(*os.File) {}
