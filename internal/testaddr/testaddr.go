// Package testaddr gives tests loopback addresses for servers they start
// as processes or by flag, which must be told an address before they
// listen.
package testaddr

import (
	"net"
	"sync"
	"testing"
)

// handedOut holds the addresses Free has returned. The port of a listener
// just closed is free again, and the kernel may hand it to the next one:
// two servers started in a row were given the same port, and the second
// could not listen.
var handedOut sync.Map

// Free returns a loopback address ("127.0.0.1:port") whose port is free
// now and was not returned before in this process.
func Free(t testing.TB) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
	t.Fatal("no free port that was not handed out before in 100 tries")
	return ""
}
