package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockpit-cs/cockpit/internal/chtest"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// TestRuleBookSharedAndPersistent puts a rule set through one instance's
// rule book: another instance over the same store has it after a sync,
// and an instance started afterwards (a restart) starts with it. With
// rules.file the file wins: a put is refused, and the file's rules are
// recorded in the history.
func TestRuleBookSharedAndPersistent(t *testing.T) {
	_, conn := chtest.Start(t).Database(t)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	book := func(file string) *ruleBook {
		t.Helper()
		defaults, err := rules.DefaultRules()
		if err != nil {
			t.Fatal(err)
		}
		ev, err := rules.NewEvaluator(noSource{}, noSpikes{}, defaults, logger)
		if err != nil {
			t.Fatal(err)
		}
		b := &ruleBook{file: file, store: rules.NewRuleStore(conn), ev: ev, logger: logger}
		if err := b.load(ctx); err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := book(""), book("")
	src := []byte(`rules:
  - {name: only_rule, kind: threshold, metric: complaints, window: 5m, op: ">", value: 3, severity: critical}
`)
	rs, err := rules.ParseRules(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Replace(ctx, src, rs, "lin"); err != nil {
		t.Fatal(err)
	}
	names := func(b *ruleBook) string {
		var n []string
		for _, r := range b.ev.Rules().Rules {
			n = append(n, r.Name)
		}
		return strings.Join(n, ",")
	}
	if got := names(a); got != "only_rule" {
		t.Errorf("rules where put = %s", got)
	}
	if err := b.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(b); got != "only_rule" {
		t.Errorf("rules on the other instance after a sync = %s, want only_rule", got)
	}
	if got := names(book("")); got != "only_rule" {
		t.Errorf("rules after a restart = %s, want only_rule", got)
	}

	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, rules.DefaultRulesYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	f := book(file)
	if _, err := f.Replace(ctx, src, rs, "lin"); !errors.Is(err, rules.ErrRulesFromFile) {
		t.Errorf("put with rules.file: %v, want ErrRulesFromFile", err)
	}
	if names(f) == "only_rule" {
		t.Error("the stored rules replaced the file's")
	}
	hist, err := f.History(ctx, 10)
	if err != nil || len(hist) != 2 || hist[0].Source != "file" || hist[1].Author != "lin" {
		t.Errorf("history = %+v, %v; want the file's version over lin's", hist, err)
	}
}

type noSource struct{}

func (noSource) Scoped(context.Context, string, string, time.Time, time.Time, string) ([]rules.ScopedValue, error) {
	return nil, nil
}

type noSpikes struct{}

func (noSpikes) EvaluateSpikeRule(context.Context, time.Time, rules.Rule) ([]rules.Candidate, error) {
	return nil, nil
}
