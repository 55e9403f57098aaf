package alerts

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Matcher matches one label, as Alertmanager's do: = equal, != not equal,
// =~ matches the regular expression (anchored), !~ does not. A missing
// label has the value "".
type Matcher struct {
	Name  string `json:"name" yaml:"name"`
	Op    string `json:"op" yaml:"op"`
	Value string `json:"value" yaml:"value"`
	re    *regexp.Regexp
}

// Size limits of a matcher given by a user: a long regular expression
// costs seconds and hundreds of megabytes to compile and match.
const (
	MaxMatcherNameBytes  = 128
	MaxMatcherValueBytes = 1024
)

var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$`)

// ParseMatcher parses `name=value`, `name!="value"`, `name=~"re"` or
// `name!~re`; the value may be double-quoted (Go syntax).
func ParseMatcher(s string) (Matcher, error) {
	if len(s) > MaxMatcherNameBytes+MaxMatcherValueBytes+8 {
		return Matcher{}, fmt.Errorf("matcher is %d bytes, the limit is %d (name %d, value %d)", len(s),
			MaxMatcherNameBytes+MaxMatcherValueBytes+8, MaxMatcherNameBytes, MaxMatcherValueBytes)
	}
	m := matcherRE.FindStringSubmatch(s)
	if m == nil {
		return Matcher{}, fmt.Errorf("matcher %q: want name=value, name!=value, name=~regex or name!~regex", s)
	}
	v := m[3]
	if strings.HasPrefix(v, `"`) {
		u, err := strconv.Unquote(v)
		if err != nil {
			return Matcher{}, fmt.Errorf("matcher %q: bad quoted value: %w", s, err)
		}
		v = u
	}
	return NewMatcher(m[1], m[2], v)
}

// NewMatcher checks and compiles a matcher.
func NewMatcher(name, op, value string) (Matcher, error) {
	mt := Matcher{Name: name, Op: op, Value: value}
	if err := mt.checkSize(); err != nil {
		return mt, err
	}
	return mt, mt.compile()
}

// checkSize refuses a matcher beyond the size limits, before its regular
// expression is compiled.
func (m *Matcher) checkSize() error {
	if len(m.Name) > MaxMatcherNameBytes {
		return fmt.Errorf("matcher: label name is %d bytes, the limit is %d", len(m.Name), MaxMatcherNameBytes)
	}
	if len(m.Value) > MaxMatcherValueBytes {
		return fmt.Errorf("matcher %s: value is %d bytes, the limit is %d", m.Name, len(m.Value), MaxMatcherValueBytes)
	}
	return nil
}

func (m *Matcher) compile() error {
	if m.Name == "" {
		return errors.New("matcher: label name is required")
	}
	switch m.Op {
	case "=", "!=":
	case "=~", "!~":
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return fmt.Errorf("matcher %s: bad regular expression: %w", m.Name, err)
		}
		m.re = re
	default:
		return fmt.Errorf("matcher %s: op must be =, !=, =~ or !~ (got %q)", m.Name, m.Op)
	}
	return nil
}

// Matches reports whether the labels satisfy the matcher.
func (m Matcher) Matches(labels map[string]string) bool {
	v := labels[m.Name]
	switch m.Op {
	case "=":
		return v == m.Value
	case "!=":
		return v != m.Value
	case "=~":
		return m.re != nil && m.re.MatchString(v)
	case "!~":
		return m.re != nil && !m.re.MatchString(v)
	}
	return false
}

// String renders the matcher as name op "value".
func (m Matcher) String() string { return m.Name + m.Op + strconv.Quote(m.Value) }

// Matchers is a conjunction of matchers.
type Matchers []Matcher

// Matches reports whether every matcher matches.
func (ms Matchers) Matches(labels map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(labels) {
			return false
		}
	}
	return true
}

// Compile checks and compiles each matcher (after decoding from JSON or
// YAML, where the regular expressions are not compiled yet).
func (ms Matchers) Compile() error {
	if len(ms) == 0 {
		return errors.New("at least one matcher is required")
	}
	for i := range ms {
		if err := ms[i].compile(); err != nil {
			return err
		}
	}
	return nil
}

func (ms Matchers) String() string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
