package rules

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrRulesFromFile refuses a rule change through the API while the rules
// come from rules.file: the file is the source of truth.
var ErrRulesFromFile = errors.New("the rules are read from rules.file, which is the source of truth: edit the file (every instance reloads it) instead of PUT /api/v1/rules")

// RuleVersion is one stored version of the rule set.
type RuleVersion struct {
	// Version orders the versions; the newest is the rule set in force.
	Version uint64 `json:"version"`
	// Source is "api" (PUT /api/v1/rules) or "file" (rules.file).
	Source    string    `json:"source"`
	Author    string    `json:"author"`
	CreatedAt time.Time `json:"created_at"`
	Rules     int       `json:"rules"`
	// YAML is the rule set as it was put.
	YAML string `json:"yaml,omitempty"`
	// Diff is the line diff from the version before ("-" removed, "+"
	// added lines, with the line numbers of each side).
	Diff string `json:"diff"`
}

// RuleStore keeps every version of the rule set in ClickHouse, so a rule
// change reaches every instance and survives restarts.
type RuleStore struct {
	conn  driver.Conn
	clock func() time.Time
}

// NewRuleStore returns a rule store over conn (bound to the product's
// database).
func NewRuleStore(conn driver.Conn) *RuleStore { return &RuleStore{conn: conn, clock: time.Now} }

// LatestVersion returns the newest version number (0 when none is
// stored): a cheap check done every tick.
func (s *RuleStore) LatestVersion(ctx context.Context) (uint64, error) {
	var v uint64
	if err := s.conn.QueryRow(ctx, "SELECT max(version) FROM rule_sets").Scan(&v); err != nil {
		return 0, fmt.Errorf("cannot read the rule set version: %w", err)
	}
	return v, nil
}

// Latest returns the newest stored version; ok is false when none is.
func (s *RuleStore) Latest(ctx context.Context) (v RuleVersion, ok bool, err error) {
	vs, err := s.query(ctx, 1, true)
	if err != nil || len(vs) == 0 {
		return RuleVersion{}, false, err
	}
	return vs[0], true, nil
}

// History returns the newest versions first, at most limit, without
// their YAML (the diffs say what changed).
func (s *RuleStore) History(ctx context.Context, limit int) ([]RuleVersion, error) {
	return s.query(ctx, limit, false)
}

func (s *RuleStore) query(ctx context.Context, limit int, withYAML bool) ([]RuleVersion, error) {
	yamlCol := "''"
	if withYAML {
		yamlCol = "yaml"
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"limit": fmt.Sprint(limit)}))
	rows, err := s.conn.Query(ctx, `SELECT version, source, author, created_at, rules, `+yamlCol+`, diff
		FROM rule_sets FINAL ORDER BY version DESC LIMIT {limit:UInt32}`)
	if err != nil {
		return nil, fmt.Errorf("cannot read the rule set history: %w", err)
	}
	defer rows.Close()
	var out []RuleVersion
	for rows.Next() {
		var v RuleVersion
		var n uint32
		if err := rows.Scan(&v.Version, &v.Source, &v.Author, &v.CreatedAt, &n, &v.YAML, &v.Diff); err != nil {
			return nil, fmt.Errorf("cannot read the rule set history: %w", err)
		}
		v.Rules, v.CreatedAt = int(n), v.CreatedAt.UTC()
		out = append(out, v)
	}
	return out, rows.Err()
}

// Save stores src (which parsed as rs) as the newest version, with who
// put it and the diff from the version before. It returns the stored
// version.
func (s *RuleStore) Save(ctx context.Context, src []byte, rs *RuleSet, source, author string) (RuleVersion, error) {
	prev, _, err := s.Latest(ctx)
	if err != nil {
		return RuleVersion{}, err
	}
	now := s.clock().UTC()
	v := RuleVersion{
		Version: max(uint64(now.UnixNano()), prev.Version+1), Source: source, Author: author,
		CreatedAt: now, Rules: len(rs.Rules), YAML: string(src), Diff: LineDiff(prev.YAML, string(src)),
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO rule_sets (version, source, author, created_at, rules, yaml, diff)")
	if err != nil {
		return RuleVersion{}, fmt.Errorf("cannot store the rule set: %w", err)
	}
	if err := b.Append(v.Version, v.Source, v.Author, v.CreatedAt, uint32(v.Rules), v.YAML, v.Diff); err != nil {
		_ = b.Abort()
		return RuleVersion{}, fmt.Errorf("cannot store the rule set: %w", err)
	}
	if err := b.Send(); err != nil {
		return RuleVersion{}, fmt.Errorf("cannot store the rule set: %w", err)
	}
	return v, nil
}

// maxDiffCells bounds the work of one diff (lines of a × lines of b).
const maxDiffCells = 4_000_000

// LineDiff returns the lines removed from a ("-") and added in b ("+"),
// each with its line number in its own text, in order; "" when the texts
// have the same lines.
func LineDiff(a, b string) string {
	if a == b {
		return ""
	}
	al, bl := splitLines(a), splitLines(b)
	// Common prefix and suffix are cut first: most edits touch few lines.
	pre := 0
	for pre < len(al) && pre < len(bl) && al[pre] == bl[pre] {
		pre++
	}
	suf := 0
	for suf < len(al)-pre && suf < len(bl)-pre && al[len(al)-1-suf] == bl[len(bl)-1-suf] {
		suf++
	}
	x, y := al[pre:len(al)-suf], bl[pre:len(bl)-suf]
	var out strings.Builder
	if len(x)*len(y) > maxDiffCells {
		for i, l := range x {
			fmt.Fprintf(&out, "-%d: %s\n", pre+i+1, l)
		}
		for j, l := range y {
			fmt.Fprintf(&out, "+%d: %s\n", pre+j+1, l)
		}
		return out.String()
	}
	// lcs[i][j] is the longest common subsequence of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&out, "-%d: %s\n", pre+i+1, x[i])
			i++
		default:
			fmt.Fprintf(&out, "+%d: %s\n", pre+j+1, y[j])
			j++
		}
	}
	return out.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
