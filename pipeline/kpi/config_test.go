package kpi

import (
	"testing"
	"time"
)

// TestConfigDefaults: the defaults are valid and are what WithDefaults
// fills in; Validate does not fill them.
func TestConfigDefaults(t *testing.T) {
	d := DefaultKPIConfig()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	w := KPIConfig{MaxSteps: 7}.WithDefaults()
	if w.MaxSteps != 7 || w.ServiceLevelThreshold != d.ServiceLevelThreshold || w.Now == nil ||
		w.Rollup != DefaultRollupConfig() || w.Live != DefaultLiveConfig() {
		t.Fatalf("WithDefaults = %+v", w)
	}
	if (LiveConfig{}).Validate() == nil || (RollupConfig{}).Validate() == nil || (KPIConfig{}).Validate() == nil {
		t.Fatal("a config without its defaults validated")
	}
	if r := (RollupConfig{Settle: time.Minute}).WithDefaults(); r.Settle != time.Minute || r.ChunkHours != 6 {
		t.Fatalf("rollup WithDefaults = %+v", r)
	}
}
