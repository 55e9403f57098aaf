package schemas

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanCases add shapes the decode table does not need but the fast
// reader must get right or leave alone.
var scanCases = []string{
	`{}`,
	` {"event_id":"e1"} ` + "\n",
	`{"event_id":"a\"b\\c\/d\b\f\n\r\t\u00e9\u4e2d\u0000"}`,
	`{"event_id":"\ud83d\ude00"}`,
	`{"event_id":"\udc00"}`,
	`{"event_id":"e1","event_id":"e2"}`,
	`{"Event_ID":"e1"}`,
	`{"event_id":null}`,
	`{"schema_version":-0}`,
	`{"schema_version":1.0}`,
	`{"schema_version":1e0}`,
	`{"schema_version":01}`,
	`{"schema_version":99999999999999999999}`,
	`{"sentiment":-0.25e-1}`,
	`{"sentiment":1E+2}`,
	`{"sentiment":.5}`,
	`{"sentiment":1.}`,
	`{"sentiment":-}`,
	`{"abusive":true,"actor":{"id":"x","role":"agent"}}`,
	`{"abusive":tru}`,
	`{"abusive":truex}`,
	`{"actor":{}}`,
	`{"actor":{"role":"bot","role":"agent"}}`,
	`{"actor":{"role":"bot",}}`,
	`{"actor":{"name":"x"}}`,
	`{"event_id":"e1",}`,
	`{"event_id":"e1"}x`,
	`{"event_id":"e1"}{}`,
	`{"event_id" "e1"}`,
	`{"event_id":"e1"`,
	`{"text":"tab	inside"}`,
	`{"type":"conversation.started","channel":"chat","entry":"bot","reason":"bot_unable","resolution":"resolved","severity":"low"}`,
	`[]`,
	`null`,
	``,
}

// TestScanWireAgrees holds the fast reader to encoding/json: whatever it
// takes, encoding/json takes too, with the same result.
func TestScanWireAgrees(t *testing.T) {
	inputs := append([]string(nil), scanCases...)
	for _, tc := range decodeCases {
		inputs = append(inputs, tc.json)
	}
	taken := 0
	for _, in := range inputs {
		if scanAgrees(t, []byte(in)) {
			taken++
		}
	}
	// The fast path must actually be the path of ordinary events.
	for _, tc := range decodeCases {
		if tc.reason == "" && !strings.Contains(tc.json, "null") && !strings.Contains(tc.json, `\`) {
			var w wire
			if !scanWire([]byte(tc.json), &w) {
				t.Errorf("%s: the fast reader refused an ordinary event", tc.name)
			}
		}
	}
	if taken == 0 {
		t.Fatal("the fast reader took nothing")
	}
}

// scanAgrees checks one input and reports whether the fast reader took it.
func scanAgrees(t *testing.T, data []byte) bool {
	t.Helper()
	if !utf8.Valid(data) {
		return false // Decode never asks the fast reader
	}
	var fast wire
	if !scanWire(data, &fast) {
		return false
	}
	var slow wire
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&slow); err != nil {
		t.Fatalf("fast reader took %q, encoding/json refuses it: %v", data, err)
	}
	if dec.More() {
		t.Fatalf("fast reader took %q, which has trailing data", data)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: fast reader gives %+v, encoding/json %+v", data, fast, slow)
	}
	return true
}

func FuzzScanWire(f *testing.F) {
	for _, in := range scanCases {
		f.Add([]byte(in))
	}
	for _, tc := range decodeCases {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) { scanAgrees(t, data) })
}
