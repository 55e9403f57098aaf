package spike

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// The real public complaint sets as false-alarm checks for the built-in
// spike rule: nobody knows which of their bursts were incidents, so these
// count what the rule would have raised, per region and day.
//
//   - testdata/spike_nyc311.csv: New York City 311, the afternoon and
//     evening of 28 Feb 2023, 4,999 requests over 5 boroughs (created time
//     and borough of the published sample).
//   - testdata/spike_la311.csv: Los Angeles MyLA311, 27–31 Dec 2017, 9,999
//     requests over 15 council districts (created time and district).
//   - testdata/spike_comcast.csv: Comcast, Apr–Jun 2015, 2,224 complaints
//     over 42 states (see spikeLoadComcast).
//
// Times are read as UTC wall clock (one zone per set).

// spikeLoadCreated reads a two-column file: created time
// ("01/02/2006 03:04:05 PM"), region. Rows without a region are skipped.
func spikeLoadCreated(t testing.TB, path string) []Record {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := csv.NewReader(bytes.NewReader(raw))
	if _, err := r.Read(); err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for line := 2; ; line++ {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s line %d: %v", path, line, err)
		}
		at, err := time.Parse("01/02/2006 03:04:05 PM", row[0])
		if err != nil {
			t.Fatalf("%s line %d: %v", path, line, err)
		}
		if row[1] == "" {
			continue
		}
		recs = append(recs, Record{Region: row[1], At: at})
	}
	return recs
}

// spikeRealSet is one real set with the span the rule is evaluated over.
type spikeRealSet struct {
	name     string
	recs     []Record
	from, to time.Time
	step     time.Duration
}

func spikeRealSets(t testing.TB) []spikeRealSet {
	nyc := spikeLoadCreated(t, "testdata/spike_nyc311.csv")
	la := spikeLoadCreated(t, "testdata/spike_la311.csv")
	comcast := spikeLoadComcast(t, true)
	return []spikeRealSet{
		// The first hours build the trailing baseline; from 13:00 on.
		{"nyc311", nyc, time.Date(2023, 2, 28, 13, 0, 0, 0, time.UTC), time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC), time.Minute},
		// From the second day on, the daily baseline.
		{"la311", la, time.Date(2017, 12, 28, 14, 0, 0, 0, time.UTC), time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute},
		{"comcast", comcast, time.Date(2015, 4, 2, 0, 0, 0, 0, time.UTC), time.Date(2015, 7, 1, 0, 0, 0, 0, time.UTC), 5 * time.Minute},
	}
}

// spikeRealAlerts evaluates d over the set and counts regional alerts
// (runs of findings with gaps ≤ spikeAlertGap minutes) per region-day, and
// national alerts.
func spikeRealAlerts(t testing.TB, d *Detector, set spikeRealSet) (perRegionDay float64, regional, national int, samples []string) {
	t.Helper()
	h := NewMemoryHistory(set.recs, time.Time{})
	regions := map[string]bool{}
	for _, r := range set.recs {
		regions[r.Region] = true
	}
	gap := time.Duration(spikeAlertGap) * time.Minute
	last := map[string]time.Time{}
	ctx := context.Background()
	for now := set.from; now.Before(set.to); now = now.Add(set.step) {
		fs, err := d.Evaluate(ctx, now, spikeUpTo{h: h, now: now})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			key := f.Region
			if f.Scope == ScopeNational {
				key = "\x00national"
			}
			if l, ok := last[key]; !ok || now.Sub(l) > gap {
				if f.Scope == ScopeNational {
					national++
				} else {
					regional++
				}
				if len(samples) < 6 {
					samples = append(samples, now.Format("01-02 15:04")+" "+f.Explanation)
				}
			}
			last[key] = now
		}
	}
	days := set.to.Sub(set.from).Hours() / 24
	return float64(regional) / (days * float64(len(regions))), regional, national, samples
}
