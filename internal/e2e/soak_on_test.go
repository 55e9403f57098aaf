//go:build soak

package e2e

// soak is true under `make soak` (go test -tags soak): the fault tests run
// their long variants, and the broker-restart test runs too.
const soak = true
