//go:build !soak

package e2e

// soak is false in `make test`: the fault tests run their short variants
// (a few kills, a receiver down for under a minute).
const soak = false
