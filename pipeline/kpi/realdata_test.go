package kpi_test

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/schemas"
)

// realData finds a real public sample: in COCKPIT_REAL_DATA when set,
// else in testdata/real (the copies the tests ship), else in
// shared/data/real beside the repository or one of its parents.
func realData(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv("COCKPIT_REAL_DATA"); dir != "" {
		return filepath.Join(dir, name)
	}
	if p := filepath.Join("testdata", "real", name); fileExists(p) {
		return p
	}
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(filepath.Dir(dir), "shared", "data", "real", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("real data sample %s not found beside the repository; set COCKPIT_REAL_DATA to its folder", name)
		}
		dir = filepath.Dir(dir)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// tweet is one row of twcs5k.csv.
type tweet struct {
	id, author, parent string
	at                 time.Time
	inbound            bool
}

// twcsEvents turns the Twitter customer-support sample into events. The
// mapping:
//   - a thread (a tweet and, through in_response_to_tweet_id, the tweets
//     it answers, as far as the sample holds them) is a conversation, id
//     "tw-" + the thread's first tweet id;
//   - conversation.started at the thread's earliest tweet, region
//     "twitter", channel "other", entry "agent", queue the brand (the
//     author of the thread's first company tweet; none for a thread the
//     company never answered);
//   - every tweet is a message.sent at its created_at: an inbound tweet
//     from role customer (id its author), a company tweet from role agent
//     (id the brand).
//
// Times move by shift (whole hours), so the sample lies in the rollup's
// horizon.
func twcsEvents(t *testing.T, shift time.Duration) ([]schemas.Event, map[string][]tweet) {
	t.Helper()
	f, err := os.Open(realData(t, "twcs5k.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	tweets := map[string]tweet{}
	for _, r := range recs[1:] {
		at, err := time.Parse("Mon Jan 02 15:04:05 -0700 2006", r[4])
		if err != nil {
			t.Fatalf("tweet %s: %v", r[1], err)
		}
		tw := tweet{id: r[1], author: r[2], inbound: r[3] == "True", at: at.UTC().Add(shift)}
		if r[7] != "" {
			p, err := strconv.ParseFloat(r[7], 64)
			if err != nil {
				t.Fatalf("tweet %s: in_response_to_tweet_id %q", r[1], r[7])
			}
			tw.parent = strconv.FormatInt(int64(p), 10)
		}
		tweets[tw.id] = tw
	}
	if len(tweets) != 5000 {
		t.Fatalf("%d tweets read, want 5000", len(tweets))
	}
	root := func(id string) string {
		for range len(tweets) {
			p := tweets[id].parent
			if _, ok := tweets[p]; p == "" || !ok {
				return id
			}
			id = p
		}
		t.Fatalf("tweet %s: in_response_to_tweet_id cycle", id)
		return ""
	}
	threads := map[string][]tweet{}
	for id, tw := range tweets {
		r := root(id)
		threads[r] = append(threads[r], tw)
	}
	var evs []schemas.Event
	for r, ts := range threads {
		slices.SortFunc(ts, func(a, b tweet) int { return a.at.Compare(b.at) })
		conv := "tw-" + r
		brand := ""
		for _, tw := range ts {
			if !tw.inbound {
				brand = tw.author
				break
			}
		}
		evs = append(evs, schemas.Event{EventID: conv + "-start", SchemaVersion: 1, Type: schemas.ConversationStarted,
			ConversationID: conv, OccurredAt: ts[0].at, Region: "twitter", Channel: "other", Entry: "agent", Queue: brand})
		for _, tw := range ts {
			a := &schemas.Actor{Role: "customer", ID: tw.author}
			if !tw.inbound {
				a = &schemas.Actor{Role: "agent", ID: tw.author}
			}
			evs = append(evs, schemas.Event{EventID: "tw-" + tw.id, SchemaVersion: 1, Type: schemas.MessageSent,
				ConversationID: conv, OccurredAt: tw.at, Actor: a})
		}
		threads[r] = ts
	}
	for i := range evs {
		if err := schemas.Validate(&evs[i], time.Now(), schemas.Limits{}); err != nil {
			t.Fatalf("event %s: %v", evs[i].EventID, err)
		}
	}
	return evs, threads
}

// quantileOf is the exact p-quantile of sorted values, interpolated
// between order statistics as the product's histograms are read.
func quantileOf(sorted []float64, p float64) float64 {
	pos := p * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

func distribution(vals []float64) wantQ {
	if len(vals) == 0 {
		return wantQ{}
	}
	slices.Sort(vals)
	sum := 0.0
	for _, v := range vals {
		sum += v
	}
	return wantQ{count: uint64(len(vals)), avg: sum / float64(len(vals)), p50: quantileOf(vals, 0.5), p90: quantileOf(vals, 0.9)}
}

// TestRealTwitterSupport loads the Twitter customer-support sample as
// events (twcsEvents) and checks the metrics it exercises against values
// computed here from the CSV, over the whole sample, read raw and through
// the hourly rollup.
func TestRealTwitterSupport(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	var now time.Time
	if err := conn.QueryRow(ctx, "SELECT now64(3)").Scan(&now); err != nil {
		t.Fatal(err)
	}
	now = now.UTC()
	// The sample ends on 2017-12-01; move it to end two days ago.
	last := time.Date(2017, 12, 2, 0, 0, 0, 0, time.UTC)
	shift := now.Truncate(24 * time.Hour).Add(-2 * 24 * time.Hour).Sub(last)
	evs, threads := twcsEvents(t, shift)
	insertEvents(t, conn, evs)

	// The definitions (SPEC §5), computed from the tweets.
	var (
		from, to          time.Time
		fr, hfr, resp     []float64
		started, lateResp int
	)
	for _, ts := range threads {
		start := ts[0].at
		if from.IsZero() || start.Before(from) {
			from = start
		}
		started++
		var replies []time.Time
		for _, tw := range ts {
			if tw.at.After(to) {
				to = tw.at
			}
			if !tw.inbound {
				replies = append(replies, tw.at)
			}
		}
		if len(replies) > 0 {
			// Every reply is an agent's: both first responses are the same.
			fr = append(fr, replies[0].Sub(start).Seconds())
			hfr = append(hfr, replies[0].Sub(start).Seconds())
		}
		for _, tw := range ts {
			if !tw.inbound {
				continue
			}
			for _, r := range replies {
				if !r.Before(tw.at) {
					resp = append(resp, r.Sub(tw.at).Seconds())
					if r.Sub(tw.at) > 24*time.Hour {
						lateResp++
					}
					break
				}
			}
		}
	}
	t.Logf("%d threads, %d customer tweets answered (%d more than a day later)", started, len(resp), lateResp)
	wantResp, wantFR, wantHFR := distribution(resp), distribution(fr), distribution(hfr)

	cfg := kpi.KPIConfig{Now: func() time.Time { return now }, Rollup: kpi.RollupConfig{Settle: time.Second, Horizon: 200 * 24 * time.Hour}}
	rawCfg := cfg
	rawCfg.Rollup.Disabled = true
	raw, err := kpi.NewKPIStore(conn, rawCfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kpi.NewKPIStore(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kpi.NewRollupBuilder(conn, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(cfg.Rollup.Settle)
	res, err := b.Pass(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Built == 0 {
		t.Fatalf("the rollup built no hour: %+v", res)
	}
	// Whole hours, so the rollup answers all of it.
	w := kpi.Window{From: from.Truncate(time.Hour), To: to.Truncate(time.Hour).Add(time.Hour)}
	for _, c := range []struct {
		name string
		st   *kpi.KPIStore
	}{{"raw", raw}, {"rollup", st}} {
		t.Run(c.name, func(t *testing.T) {
			snap, err := c.st.KPIs(ctx, w, kpi.Filters{Region: "twitter"})
			if err != nil {
				t.Fatal(err)
			}
			if snap.ConversationsStarted != uint64(started) {
				t.Errorf("conversations_started = %d, want %d", snap.ConversationsStarted, started)
			}
			checkQuantile(t, "response_seconds", snap.ResponseSeconds, wantResp)
			checkQuantile(t, "first_response_seconds", snap.FirstResponseSeconds, wantFR)
			checkQuantile(t, "human_first_response_seconds", snap.HumanFirstResponseSeconds, wantHFR)
			if snap.ConversationsClosed != 0 || snap.Complaints != 0 || snap.NegativeSentimentRate != nil || snap.ServiceLevel != nil {
				t.Errorf("metrics the sample has no events for are not empty: %+v", snap)
			}
			if c.name == "rollup" {
				// One queue: the brands' numbers add up to the whole.
				by, err := c.st.KPIsBy(ctx, w, kpi.Filters{}, kpi.DimQueue)
				if err != nil {
					t.Fatal(err)
				}
				n := uint64(0)
				for _, k := range by {
					n += k.ResponseSeconds.Count
				}
				if n != wantResp.count {
					t.Errorf("response_seconds.count by queue adds up to %d, want %d", n, wantResp.count)
				}
			}
		})
	}
}
