package api

import (
	"os"
	"testing"

	"github.com/cockpit-cs/cockpit/internal/chtest"
)

// TestMain closes the shared ClickHouse engine the integration tests use.
func TestMain(m *testing.M) { os.Exit(chtest.Main(m)) }
