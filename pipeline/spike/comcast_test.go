package spike

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

// spikeLoadComcast reads testdata/spike_comcast.csv, the public "Comcast
// telecom complaints" sample (2,224 complaints, 2015), as complaint.filed
// records with region = State.
//
// Times: the file has a local wall-clock date and time with no zone; they
// are read as UTC, i.e. one zone for the whole country. That shifts nothing
// inside the data; it only means "hour of day" is the file's own clock.
//
// Dates: the file's Date column (dd-mm-yy) agrees with Date_month_year, but
// every date whose day is ≤ 12 has day and month swapped by an earlier
// export (the rows dated the 4th–6th of Jan–Mar and Jul–Dec are really 1–12
// April/May/June; no row is dated 1–3 or 7–12 of any month). With fixDates
// the swap is undone, which gives one continuous quarter, 1 Apr – 30 Jun
// 2015, with a clear weekday/weekend rhythm; without it the data is read as
// published.
func spikeLoadComcast(t testing.TB, fixDates bool) []Record {
	t.Helper()
	raw, err := os.ReadFile("testdata/spike_comcast.csv")
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.TrimPrefix(raw, []byte("\ufeff"))
	r := csv.NewReader(bytes.NewReader(raw))
	header, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, name := range []string{"Date", "Time", "State"} {
		if _, ok := col[name]; !ok {
			t.Fatalf("column %q missing in %v", name, header)
		}
	}
	var recs []Record
	for line := 2; ; line++ {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		at, err := time.Parse("02-01-06 3:04:05 PM", row[col["Date"]]+" "+row[col["Time"]])
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		if fixDates && at.Day() <= 12 {
			at = time.Date(at.Year(), time.Month(at.Day()), int(at.Month()), at.Hour(), at.Minute(), at.Second(), 0, time.UTC)
		}
		recs = append(recs, Record{Region: row[col["State"]], At: at})
	}
	return recs
}

// spikeComcastConfig is the configuration for a quarter of sparse data:
// ~25 complaints a day across 42 states, so a 5–30 minute window holds
// nothing. A 24-hour window (compared with the same weekday of the past
// weeks, which carries the weekday/weekend rhythm) and a 6-hour window are
// tested, every hour.
func spikeComcastConfig() Config {
	return Config{
		Windows:      []time.Duration{6 * time.Hour, 24 * time.Hour},
		BaselineSpan: 6 * time.Hour,
	}
}

// TestSpikeComcastBacktest replays the Comcast quarter hourly and checks
// that the 23–24 June 2015 surge is flagged.
func TestSpikeComcastBacktest(t *testing.T) {
	recs := spikeLoadComcast(t, true)
	if len(recs) != 2224 {
		t.Fatalf("loaded %d complaints, want 2224", len(recs))
	}
	h := NewMemoryHistory(recs, time.Date(2015, 4, 1, 0, 0, 0, 0, time.UTC))
	d := spikeMustDetector(t, spikeComcastConfig())
	eps, err := Backtest(context.Background(), d, h,
		time.Date(2015, 4, 2, 0, 0, 0, 0, time.UTC), time.Date(2015, 7, 1, 0, 0, 0, 0, time.UTC), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	surgeFrom := time.Date(2015, 6, 23, 0, 0, 0, 0, time.UTC)
	surgeTo := time.Date(2015, 6, 26, 0, 0, 0, 0, time.UTC)
	var surge []Episode
	for _, e := range eps {
		t.Log(spikeEpisodeLine(e))
		if e.Start.Before(surgeTo) && e.End.After(surgeFrom) {
			surge = append(surge, e)
		}
	}
	if len(surge) == 0 {
		t.Fatal("the 23–24 June 2015 surge was not flagged")
	}
	national := false
	for _, e := range surge {
		national = national || e.Scope == ScopeNational
	}
	if !national {
		t.Error("the surge raised no national finding; it was a nationwide rise")
	}

	// Which states rose on 24 June (24 h to 25 June 00:00) against the same
	// weekday of the 4 previous weeks: all the big ones did, roughly in
	// proportion, which is why the detector calls it national.
	at := time.Date(2015, 6, 25, 0, 0, 0, 0, time.UTC)
	ranges := []Range{{From: at.Add(-24 * time.Hour), To: at}}
	for k := 1; k <= 4; k++ {
		from := at.Add(-24*time.Hour - time.Duration(k)*spikeWeek)
		ranges = append(ranges, Range{From: from, To: from.Add(24 * time.Hour)})
	}
	counts, err := h.SpikeCounts(context.Background(), ranges)
	if err != nil {
		t.Fatal(err)
	}
	var total, base float64
	for state, c := range counts[0] {
		var b float64
		for _, m := range counts[1:] {
			b += m[state] / 4
		}
		total += c
		if c >= 8 {
			t.Logf("24 Jun: %-12s %3.0f complaints, same weekday mean %.1f", state, c, b)
		}
	}
	for _, m := range counts[1:] {
		for _, c := range m {
			base += c / 4
		}
	}
	t.Logf("24 Jun: national %.0f complaints, same weekday mean %.1f", total, base)
}

// TestSpikeComcastRawDates replays the file as published (dates not
// repaired): the year is mostly empty days with three-day islands, yet the
// surge must still be flagged.
func TestSpikeComcastRawDates(t *testing.T) {
	recs := spikeLoadComcast(t, false)
	h := NewMemoryHistory(recs, time.Time{})
	d := spikeMustDetector(t, spikeComcastConfig())
	eps, err := Backtest(context.Background(), d, h,
		time.Date(2015, 1, 5, 0, 0, 0, 0, time.UTC), time.Date(2015, 12, 7, 0, 0, 0, 0, time.UTC), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range eps {
		t.Log(spikeEpisodeLine(e))
		if !e.Start.After(time.Date(2015, 6, 24, 0, 0, 0, 0, time.UTC)) && e.End.After(time.Date(2015, 6, 23, 0, 0, 0, 0, time.UTC)) {
			found = true
		}
	}
	if !found {
		t.Error("the 23–24 June 2015 surge was not flagged")
	}
}

func spikeEpisodeLine(e Episode) string {
	who := string(e.Scope)
	if e.Region != "" {
		who = e.Region
	}
	return fmt.Sprintf("%s .. %s (%2d evals) %-9s %-14s peak %s [%s]",
		e.Start.Format("2006-01-02 15:04"), e.End.Format("01-02 15:04"), e.Evaluations, e.Scope, who,
		e.Peak.At.Format("01-02 15:04"), e.Peak.Explanation)
}
