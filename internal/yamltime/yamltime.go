// Package yamltime is the duration of the YAML the cockpit reads and
// writes back: rule sets and alert routes.
//
// Settings of a process (internal/config) are plain time.Duration: yaml.v3
// and the COCKPIT_* variables read them with the same time.ParseDuration.
// Duration adds what those YAML documents need on top: errors that name
// the line, and writing back as "30s" rather than as nanoseconds.
package yamltime

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "500ms", "30s", "2m" or "1h" in
// YAML: any string time.ParseDuration accepts, so 0 (no unit) as well.
// Negative durations are read; whoever uses one says whether it may be.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a duration such as 30s, 5m or 1h is expected", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 30s, 5m, 1h)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
