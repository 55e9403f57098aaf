package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/schemas"
)

// TestStoredVersionsLookup: the look-up of stored event_ids finds every
// stored id and no other, whatever bytes the ids hold (quotes,
// backslashes, escapes, a zero byte, other scripts), in one query for a
// batch of 60,000 ids, and in several for ids that fill more than one.
func TestStoredVersionsLookup(t *testing.T) {
	st := chtest.Start(t)
	_, conn := st.Database(t)
	ctx := context.Background()
	odd := []string{`it's`, `back\slash`, `\x00`, "nul\x00byte", "new\nline", "转人工", `'); DROP TABLE events; --`, strings.Repeat("长", 64)}
	var stored []schemas.Event
	at := time.Now().UTC().Truncate(time.Millisecond)
	for i, id := range odd {
		if i%2 == 0 {
			stored = append(stored, schemas.Event{EventID: id, SchemaVersion: 1, Type: schemas.ComplaintFiled,
				OccurredAt: at, ConversationID: "c", Region: "r"})
		}
	}
	for i := range 30000 {
		stored = append(stored, schemas.Event{EventID: fmt.Sprintf("e-%d", i), SchemaVersion: 1, Type: schemas.ComplaintFiled,
			OccurredAt: at, ConversationID: "c", Region: "r"})
	}
	if err := Insert(ctx, conn, stored); err != nil {
		t.Fatal(err)
	}
	s := store{conn: conn}
	check := func(name string, ids []string) {
		t.Helper()
		before := st.Statements()
		got, err := s.storedVersions(ctx, ids)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := map[string]bool{}
		for _, e := range stored {
			want[e.EventID] = true
		}
		found := 0
		for _, id := range ids {
			_, ok := got[id]
			if ok != want[id] {
				t.Errorf("%s: %q found %v, stored %v", name, id, ok, want[id])
			}
			if ok {
				found++
			}
		}
		if len(got) != found {
			t.Errorf("%s: %d ids found, %d of them asked for", name, len(got), found)
		}
		t.Logf("%s: %d ids, %d found, %d statements", name, len(ids), found, st.Statements()-before)
	}
	var all []string
	for i := range 60000 {
		all = append(all, fmt.Sprintf("e-%d", i))
	}
	before := st.Statements()
	check("plain ids", all)
	if n := st.Statements() - before; n != 1 {
		t.Errorf("60,000 plain ids took %d queries, want 1", n)
	}
	check("odd ids", odd)
	var noZero []string
	for _, id := range odd {
		if !strings.Contains(id, "\x00") {
			noZero = append(noZero, id)
		}
	}
	check("odd ids without a zero byte", noZero)
	check("odd and plain ids", append(append([]string{}, odd...), all[:1000]...))
	// Ids that fill more than one query: a zero byte in each makes them
	// literals of about 4 bytes a byte.
	var big []string
	for i := range 40 {
		big = append(big, fmt.Sprintf("%s\x00%d", strings.Repeat("\x01", 60000), i))
	}
	before = st.Statements()
	check("long ids", big)
	if n := st.Statements() - before; n < 2 {
		t.Errorf("ids of %d MiB took %d query, want several", 40*60000*4>>20, n)
	}
}
