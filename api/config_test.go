package api

import (
	"reflect"
	"testing"
)

// TestConfigDefaults: the defaults are valid, WithDefaults fills exactly
// them and leaves set fields alone, and neither it nor Validate changes
// the config it is called on.
func TestConfigDefaults(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if got := (Config{}).WithDefaults(); !reflect.DeepEqual(got, DefaultConfig()) {
		t.Fatalf("WithDefaults of zero = %+v, want %+v", got, DefaultConfig())
	}
	c := Config{MaxSteps: 7}
	if got := c.WithDefaults(); got.MaxSteps != 7 || got.StreamBuffer != 16 {
		t.Fatalf("WithDefaults = %+v", got)
	}
	if err := c.Validate(); err == nil {
		t.Fatal("a partial config validated without its defaults")
	}
	if !reflect.DeepEqual(c, Config{MaxSteps: 7}) {
		t.Fatalf("config changed: %+v", c)
	}
}
