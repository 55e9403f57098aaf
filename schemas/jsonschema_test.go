package schemas

import (
	"bytes"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("events.v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("events.v1.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("events.v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJSONSchemaAgrees keeps the published schema and the Go validation in
// step: every case of the decode table gets the same verdict from both.
func TestJSONSchemaAgrees(t *testing.T) {
	s := compileSchema(t)
	for _, tc := range decodeCases {
		if tc.clockOnly || tc.reason == ReasonInvalidUTF8 || tc.reason == ReasonOversize {
			continue // the schema cannot see the clock, bytes or size
		}
		t.Run(tc.name, func(t *testing.T) {
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.json))
			if err != nil {
				if tc.reason != ReasonMalformedJSON {
					t.Fatalf("test JSON does not parse: %v", err)
				}
				return
			}
			// A trailing second value, and a repeated key, are invisible
			// to a document parser.
			if tc.name == "trailing" || strings.HasPrefix(tc.name, "duplicate") {
				return
			}
			verr := s.Validate(doc)
			if tc.reason == "" && verr != nil {
				t.Fatalf("schema refuses an event Go accepts: %v", verr)
			}
			if tc.reason != "" && verr == nil {
				t.Fatalf("schema accepts an event Go refuses (%s %s)", tc.reason, tc.field)
			}
		})
	}
}

// TestJSONSchemaFields checks that the schema names exactly the fields of
// Event, with the same enumerations.
func TestJSONSchemaFields(t *testing.T) {
	raw, err := os.ReadFile("events.v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	props := doc.(map[string]any)["properties"].(map[string]any)
	var schemaFields, goFields []string
	for k := range props {
		schemaFields = append(schemaFields, k)
	}
	typ := reflect.TypeFor[Event]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		goFields = append(goFields, name)
	}
	sort.Strings(schemaFields)
	sort.Strings(goFields)
	if !slices.Equal(schemaFields, goFields) {
		t.Fatalf("schema fields %v\n     Go fields %v", schemaFields, goFields)
	}
	enums := map[string][]string{
		"channel": Channels, "entry": Entries, "reason": Reasons,
		"resolution": Resolutions, "severity": Severities,
	}
	var types []string
	for _, et := range EventTypes {
		types = append(types, string(et))
	}
	enums["type"] = types
	for field, want := range enums {
		var got []string
		for _, v := range props[field].(map[string]any)["enum"].([]any) {
			if str, ok := v.(string); ok && str != "" {
				got = append(got, str)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: schema enum %v, Go %v", field, got, want)
		}
	}
	var roles []string
	actor := props["actor"].(map[string]any)["properties"].(map[string]any)["role"].(map[string]any)
	for _, v := range actor["enum"].([]any) {
		roles = append(roles, v.(string))
	}
	if !slices.Equal(roles, Roles) {
		t.Errorf("actor.role: schema enum %v, Go %v", roles, Roles)
	}
}
