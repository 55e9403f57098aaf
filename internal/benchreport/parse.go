package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Result is one benchmark line of `go test -bench` output.
type Result struct {
	Pkg     string             // the "pkg:" line before it
	Name    string             // without the "Benchmark" prefix and the -GOMAXPROCS suffix
	N       int                // iterations
	Metrics map[string]float64 // unit -> value, units normalised (see normUnit)
	Order   []string           // units in the order printed
}

// Raw is a parsed raw.txt: the metadata lines bench.sh writes, the commands
// it ran, every benchmark result, and the failures.
type Raw struct {
	Meta     [][2]string // "# key: value" lines, in order
	Commands []string    // "$ command" lines
	Results  []Result
	Failures []string // "--- FAIL:" lines and the line after each
	Skips    []string // "--- SKIP:" lines with their reason
}

var (
	benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)
	metaLine  = regexp.MustCompile(`^# ([A-Za-z][A-Za-z0-9 _./-]*): (.*)$`)
)

// Parse reads raw `go test -bench` output with bench.sh's annotations.
// Lines it does not understand are ignored (they stay in the raw output
// the report embeds), so a new benchmark or a new metric needs no change
// here.
func Parse(r io.Reader) (*Raw, error) {
	raw := &Raw{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pkg := ""
	var pendingFail, pendingSkip int = -1, -1
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if pendingFail >= 0 {
			if trimmed != "" && !strings.HasPrefix(trimmed, "---") && !strings.HasPrefix(trimmed, "FAIL") {
				raw.Failures[pendingFail] += ": " + trimmed
			}
			pendingFail = -1
		}
		if pendingSkip >= 0 {
			if trimmed != "" && !strings.HasPrefix(trimmed, "---") {
				raw.Skips[pendingSkip] += ": " + trimmed
			}
			pendingSkip = -1
		}
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
		case strings.HasPrefix(line, "$ "):
			raw.Commands = append(raw.Commands, strings.TrimPrefix(line, "$ "))
		case metaLine.MatchString(line):
			m := metaLine.FindStringSubmatch(line)
			raw.Meta = append(raw.Meta, [2]string{m[1], strings.TrimSpace(m[2])})
		case strings.Contains(line, "--- FAIL: "):
			// go test may print it after a benchmark's name on one line.
			_, after, _ := strings.Cut(line, "--- FAIL: ")
			raw.Failures = append(raw.Failures, strings.TrimSpace(after))
			pendingFail = len(raw.Failures) - 1
		case strings.Contains(line, "--- SKIP: "):
			_, after, _ := strings.Cut(line, "--- SKIP: ")
			raw.Skips = append(raw.Skips, strings.TrimSpace(after))
			pendingSkip = len(raw.Skips) - 1
		default:
			if res, ok := parseBench(line); ok {
				res.Pkg = pkg
				raw.Results = append(raw.Results, res)
			}
		}
	}
	return raw, sc.Err()
}

// parseBench reads "BenchmarkX/y-2  3  123 ns/op  4.5 unit ...".
func parseBench(line string) (Result, bool) {
	m := benchLine.FindStringSubmatch(line)
	if m == nil {
		return Result{}, false
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return Result{}, false
	}
	fields := strings.Fields(m[3])
	if len(fields) < 2 || len(fields)%2 != 0 {
		return Result{}, false
	}
	res := Result{Name: m[1], N: n, Metrics: map[string]float64{}}
	for i := 0; i < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return Result{}, false
		}
		u := normUnit(fields[i+1])
		if _, dup := res.Metrics[u]; !dup {
			res.Order = append(res.Order, u)
		}
		res.Metrics[u] = v
	}
	return res, true
}

// normUnit makes units written by different benchmarks comparable:
// "p99_ms" and "p99-ms" are the same unit.
func normUnit(u string) string {
	return strings.ReplaceAll(u, "_", "-")
}

// Find returns the first result whose name matches.
func (r *Raw) Find(match func(string) bool) (Result, bool) {
	for _, res := range r.Results {
		if match(res.Name) {
			return res, true
		}
	}
	return Result{}, false
}

// MetaValue returns the value of a metadata key, or "".
func (r *Raw) MetaValue(key string) string {
	for _, kv := range r.Meta {
		if strings.EqualFold(kv[0], key) {
			return kv[1]
		}
	}
	return ""
}
