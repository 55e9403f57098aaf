package schemas

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// decodeCase is one event and what Decode must say of it. The same table
// drives the JSON Schema agreement test, except cases marked clockOnly,
// which depend on the receiver's clock that a schema cannot know.
type decodeCase struct {
	name      string
	json      string
	reason    Reason // "" = accepted
	field     string
	clockOnly bool
}

const base = `"event_id":"e1","schema_version":1,"occurred_at":"2026-11-22T17:59:58.123+08:00","conversation_id":"c1"`

var decodeCases = []decodeCase{
	{name: "started", json: `{` + base + `,"type":"conversation.started","channel":"chat","region":"广州","queue":"billing-l1","business_line":"billing","entry":"bot","customer_id":"u9"}`},
	{name: "message customer", json: `{` + base + `,"type":"message.sent","actor":{"role":"customer","id":"u9"},"sentiment":-0.5,"abusive":false,"text":"</script><img src=x onerror=alert(1)>"}`},
	{name: "message bot no id", json: `{` + base + `,"type":"message.sent","actor":{"role":"bot"}}`},
	{name: "transfer", json: `{` + base + `,"type":"transfer.requested","reason":"bot_unable"}`},
	{name: "assigned", json: `{` + base + `,"type":"agent.assigned","actor":{"role":"agent","id":"a7"}}`},
	{name: "abandoned", json: `{` + base + `,"type":"conversation.abandoned"}`},
	{name: "closed", json: `{` + base + `,"type":"conversation.closed","resolution":"resolved"}`},
	{name: "complaint", json: `{` + base + `,"type":"complaint.filed","region":"北京","category":"billing","severity":"high"}`},
	{name: "csat", json: `{` + base + `,"type":"csat.submitted","score":5}`},
	{name: "utc Z", json: `{"event_id":"e1","schema_version":1,"occurred_at":"2026-11-22T09:59:58Z","conversation_id":"c1","type":"conversation.abandoned"}`},
	{name: "null optional", json: `{` + base + `,"type":"conversation.abandoned","queue":null}`},

	{name: "not json", json: `{"event_id":`, reason: ReasonMalformedJSON},
	{name: "array", json: `[1,2]`, reason: ReasonMalformedJSON},
	{name: "null", json: `null`, reason: ReasonMalformedJSON},
	{name: "trailing", json: `{` + base + `,"type":"conversation.abandoned"} {}`, reason: ReasonMalformedJSON},
	{name: "bad utf8", json: "{" + base + `,"type":"conversation.abandoned","queue":"` + "\xff\xfe" + `"}`, reason: ReasonInvalidUTF8},
	{name: "key in other case", json: `{"Event_ID":"e1","schema_version":1,"occurred_at":"2026-11-22T09:59:58Z","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonUnknownField, field: "Event_ID"},
	{name: "actor key in other case", json: `{` + base + `,"type":"message.sent","actor":{"Role":"bot"}}`, reason: ReasonUnknownField, field: "actor.Role"},
	{name: "duplicate key", json: `{` + base + `,"type":"complaint.filed","region":"北京","region":"广州"}`, reason: ReasonMalformedJSON, field: "region"},
	{name: "duplicate actor key", json: `{` + base + `,"type":"message.sent","actor":{"role":"bot","role":"agent","id":"a"}}`, reason: ReasonMalformedJSON, field: "actor.role"},
	{name: "escaped key", json: `{"event\u005fid":"e1","schema_version":1,"occurred_at":"2026-11-22T09:59:58Z","conversation_id":"c1","type":"conversation.abandoned","text":"a\"}{,"}`},
	{name: "unknown field", json: `{` + base + `,"type":"conversation.abandoned","bussiness_line":"x"}`, reason: ReasonUnknownField, field: "bussiness_line"}, //nolint:misspell // a misspelt key is the unknown field
	{name: "wrong type version", json: `{"event_id":"e1","schema_version":"1","occurred_at":"2026-11-22T09:59:58Z","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonWrongType, field: "schema_version"},
	{name: "wrong type score", json: `{` + base + `,"type":"csat.submitted","score":4.5}`, reason: ReasonWrongType, field: "score"},
	{name: "wrong type actor", json: `{` + base + `,"type":"message.sent","actor":"bot"}`, reason: ReasonWrongType, field: "actor"},
	{name: "missing version", json: `{"event_id":"e1","occurred_at":"2026-11-22T09:59:58Z","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonMissingField, field: "schema_version"},
	{name: "version 2", json: `{"event_id":"e1","schema_version":2,"occurred_at":"2026-11-22T09:59:58Z","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonUnsupportedVersion, field: "schema_version"},
	{name: "missing event_id", json: `{"schema_version":1,"occurred_at":"2026-11-22T09:59:58Z","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonMissingField, field: "event_id"},
	{name: "long event_id", json: `{"event_id":"` + strings.Repeat("x", 65) + `","schema_version":1,"occurred_at":"2026-11-22T09:59:58Z","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonInvalidValue, field: "event_id"},
	{name: "missing type", json: `{` + base + `}`, reason: ReasonMissingField, field: "type"},
	{name: "unknown type", json: `{` + base + `,"type":"conversation.exploded"}`, reason: ReasonUnknownType, field: "type"},
	{name: "missing occurred_at", json: `{"event_id":"e1","schema_version":1,"conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonMissingField, field: "occurred_at"},
	{name: "no offset", json: `{"event_id":"e1","schema_version":1,"occurred_at":"2026-11-22T09:59:58","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonInvalidValue, field: "occurred_at"},
	{name: "zero time", json: `{"event_id":"e1","schema_version":1,"occurred_at":"0001-01-01T00:00:00Z","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonInvalidValue, field: "occurred_at", clockOnly: true},
	{name: "not a time", json: `{"event_id":"e1","schema_version":1,"occurred_at":"yesterday","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonInvalidValue, field: "occurred_at"},
	{name: "future", json: `{"event_id":"e1","schema_version":1,"occurred_at":"2026-11-22T10:30:00Z","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonFutureTimestamp, field: "occurred_at", clockOnly: true},
	{name: "ancient", json: `{"event_id":"e1","schema_version":1,"occurred_at":"2015-06-23T10:00:00Z","conversation_id":"c1","type":"conversation.abandoned"}`, reason: ReasonAncientTimestamp, field: "occurred_at", clockOnly: true},
	{name: "missing conversation", json: `{"event_id":"e1","schema_version":1,"occurred_at":"2026-11-22T09:59:58Z","type":"conversation.abandoned"}`, reason: ReasonMissingField, field: "conversation_id"},
	{name: "started no region", json: `{` + base + `,"type":"conversation.started","channel":"chat","entry":"bot"}`, reason: ReasonMissingField, field: "region"},
	{name: "started no channel", json: `{` + base + `,"type":"conversation.started","region":"广州","entry":"bot"}`, reason: ReasonMissingField, field: "channel"},
	{name: "started bad channel", json: `{` + base + `,"type":"conversation.started","channel":"fax","region":"广州","entry":"bot"}`, reason: ReasonInvalidValue, field: "channel"},
	{name: "started no entry", json: `{` + base + `,"type":"conversation.started","channel":"chat","region":"广州"}`, reason: ReasonMissingField, field: "entry"},
	{name: "region too long", json: `{` + base + `,"type":"complaint.filed","region":"` + strings.Repeat("广", 65) + `"}`, reason: ReasonInvalidValue, field: "region"},
	{name: "region with NUL", json: `{` + base + `,"type":"complaint.filed","region":"a\u0000b"}`, reason: ReasonInvalidValue, field: "region"},
	{name: "queue with tab", json: `{` + base + `,"type":"conversation.abandoned","queue":"q\t1"}`, reason: ReasonInvalidValue, field: "queue"},
	{name: "business line with CR", json: `{` + base + `,"type":"conversation.abandoned","business_line":"b\r"}`, reason: ReasonInvalidValue, field: "business_line"},
	{name: "conversation with LF", json: `{"event_id":"e1","schema_version":1,"occurred_at":"2026-11-22T09:59:58Z","conversation_id":"c\n1","type":"conversation.abandoned"}`, reason: ReasonInvalidValue, field: "conversation_id"},
	{name: "agent with C1", json: `{` + base + `,"type":"agent.assigned","actor":{"role":"agent","id":"a\u0085"}}`, reason: ReasonInvalidValue, field: "actor.id"},
	{name: "backslashes ok", json: `{` + base + `,"type":"complaint.filed","region":"\\N","queue":"a\\0b"}`},
	{name: "region 64 chinese ok", json: `{` + base + `,"type":"complaint.filed","region":"` + strings.Repeat("广", 64) + `"}`},
	{name: "complaint no region", json: `{` + base + `,"type":"complaint.filed","severity":"low"}`, reason: ReasonMissingField, field: "region"},
	{name: "bad severity", json: `{` + base + `,"type":"complaint.filed","region":"北京","severity":"critical"}`, reason: ReasonInvalidValue, field: "severity"},
	{name: "message no actor", json: `{` + base + `,"type":"message.sent"}`, reason: ReasonMissingField, field: "actor"},
	{name: "message system actor", json: `{` + base + `,"type":"message.sent","actor":{"role":"system"}}`, reason: ReasonInvalidValue, field: "actor.role"},
	{name: "actor unknown role", json: `{` + base + `,"type":"message.sent","actor":{"role":"robot"}}`, reason: ReasonInvalidValue, field: "actor.role"},
	{name: "actor extra field", json: `{` + base + `,"type":"message.sent","actor":{"role":"bot","name":"x"}}`, reason: ReasonUnknownField, field: "name"},
	{name: "sentiment range", json: `{` + base + `,"type":"message.sent","actor":{"role":"customer"},"sentiment":1.5}`, reason: ReasonInvalidValue, field: "sentiment"},
	{name: "assigned no id", json: `{` + base + `,"type":"agent.assigned","actor":{"role":"agent"}}`, reason: ReasonMissingField, field: "actor.id"},
	{name: "assigned bot", json: `{` + base + `,"type":"agent.assigned","actor":{"role":"bot","id":"b1"}}`, reason: ReasonInvalidValue, field: "actor.role"},
	{name: "transfer no reason", json: `{` + base + `,"type":"transfer.requested"}`, reason: ReasonMissingField, field: "reason"},
	{name: "transfer bad reason", json: `{` + base + `,"type":"transfer.requested","reason":"bored"}`, reason: ReasonInvalidValue, field: "reason"},
	{name: "closed no resolution", json: `{` + base + `,"type":"conversation.closed"}`, reason: ReasonMissingField, field: "resolution"},
	{name: "csat no score", json: `{` + base + `,"type":"csat.submitted"}`, reason: ReasonMissingField, field: "score"},
	{name: "csat zero", json: `{` + base + `,"type":"csat.submitted","score":0}`, reason: ReasonInvalidValue, field: "score"},
	{name: "csat six", json: `{` + base + `,"type":"csat.submitted","score":6}`, reason: ReasonInvalidValue, field: "score"},
	{name: "oversize", json: `{` + base + `,"type":"message.sent","actor":{"role":"customer"},"text":"` + strings.Repeat("a", MaxEventBytes) + `"}`, reason: ReasonOversize},
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Decode([]byte(tc.json), testNow, DefaultLimits())
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if ev.EventID != "e1" || ev.SchemaVersion != 1 || ev.ConversationID == "" || ev.OccurredAt.IsZero() {
					t.Fatalf("decoded event lost fields: %+v", ev)
				}
				return
			}
			var verr *Error
			if !errors.As(err, &verr) {
				t.Fatalf("Decode error = %v, want *Error with reason %s", err, tc.reason)
			}
			if verr.Reason != tc.reason || verr.Field != tc.field {
				t.Fatalf("Decode error = %q (reason %s, field %q), want reason %s, field %q", verr, verr.Reason, verr.Field, tc.reason, tc.field)
			}
			if verr.Error() == "" || (tc.field != "" && !strings.Contains(verr.Error(), tc.field)) {
				t.Fatalf("error text %q does not name the field", verr.Error())
			}
		})
	}
}

func TestDecodeTime(t *testing.T) {
	ev, err := Decode([]byte(`{`+base+`,"type":"conversation.abandoned"}`), testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 22, 9, 59, 58, 123e6, time.UTC)
	if !ev.OccurredAt.Equal(want) {
		t.Fatalf("occurred_at = %v, want %v (offset applied, ms kept)", ev.OccurredAt, want)
	}
	ev, err = Decode([]byte(`{"event_id":"e1","schema_version":1,"occurred_at":"2026-11-22T09:59:58.123456789Z","conversation_id":"c1","type":"conversation.abandoned"}`), testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if ev.OccurredAt.Nanosecond() != 123e6 {
		t.Fatalf("sub-millisecond precision kept: %v", ev.OccurredAt)
	}
	// MaxAge zero switches the ancient check off (backfills).
	old := `{"event_id":"e1","schema_version":1,"occurred_at":"2015-06-23T10:00:00Z","conversation_id":"c1","type":"conversation.abandoned"}`
	if _, err := Decode([]byte(old), testNow, Limits{MaxFuture: time.Minute}); err != nil {
		t.Fatalf("backfill limits refused an old event: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range decodeCases {
		if tc.reason != "" {
			continue
		}
		ev, err := Decode([]byte(tc.json), testNow, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode(data, testNow, DefaultLimits())
		if err != nil {
			t.Fatalf("%s: re-decoding %s: %v", tc.name, data, err)
		}
		a, _ := json.Marshal(again)
		if string(a) != string(data) {
			t.Fatalf("%s: round trip changed the event:\n%s\n%s", tc.name, data, a)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Limits{MaxAge: -time.Second}).Validate(); err == nil {
		t.Fatal("negative max_age accepted")
	}
}

func BenchmarkDecode(b *testing.B) {
	data := []byte(`{` + base + `,"type":"message.sent","queue":"billing-l1","actor":{"role":"customer","id":"u9"},"sentiment":-0.5,"text":"我的宽带从昨天晚上开始就断了，已经重启过路由器"}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data, testNow, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data, testNow, DefaultLimits())
		if err != nil {
			var verr *Error
			if !errors.As(err, &verr) || verr.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		// Whatever is accepted is valid, and survives a round trip.
		if err := Validate(&ev, testNow, DefaultLimits()); err != nil {
			t.Fatalf("accepted event fails Validate: %v", err)
		}
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(out, testNow, DefaultLimits()); err != nil {
			t.Fatalf("re-encoded event %s refused: %v", out, err)
		}
	})
}
