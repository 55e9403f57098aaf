package yamltime

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDurationYAML(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{`500ms`, 500 * time.Millisecond},
		{`"2m"`, 2 * time.Minute},
		{`1h30m`, 90 * time.Minute},
		{`4h`, 4 * time.Hour},
		{`0`, 0},
		{`"0s"`, 0},
		{`-5s`, -5 * time.Second},
	} {
		var v struct {
			D Duration `yaml:"d"`
		}
		if err := yaml.Unmarshal([]byte("d: "+tc.in), &v); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if time.Duration(v.D) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.in, time.Duration(v.D), tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"d: 30", `line 1: "30" is not a duration`},
		{"d: soon", `line 1: "soon" is not a duration`},
		{"x: 1\nd: [1s]", `line 2: a duration such as 30s, 5m or 1h is expected`},
		{"d: {a: 1}", `line 1: a duration such as`},
	} {
		var v struct {
			X int      `yaml:"x"`
			D Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte(tc.in), &v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.in, err, tc.want)
		}
	}
	out, err := yaml.Marshal(struct {
		D Duration `yaml:"d"`
	}{Duration(90 * time.Second)})
	if err != nil || string(out) != "d: 1m30s\n" {
		t.Fatalf("marshal: %q %v", out, err)
	}
}
