package testaddr

import (
	"net"
	"testing"
)

// TestFreeNeverTwice: addresses asked for in a row are all different, and
// each can be listened on.
func TestFreeNeverTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		addr := Free(t)
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
	}
	ln, err := net.Listen("tcp", Free(t))
	if err != nil {
		t.Fatalf("cannot listen on a free address: %v", err)
	}
	ln.Close()
}
