package api

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/alerts"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
	"github.com/cockpit-cs/cockpit/pipeline/rules"
	"github.com/cockpit-cs/cockpit/schemas"
)

// The small interfaces below are what the endpoints need from the rest of
// the product. The wiring passes the concrete types named on each; an
// endpoint whose dependency is nil answers 501.

// KPISource computes the SPEC §5 metrics. *kpi.KPIStore satisfies it.
type KPISource interface {
	KPIs(ctx context.Context, w kpi.Window, f kpi.Filters) (kpi.Snapshot, error)
	KPIsBy(ctx context.Context, w kpi.Window, f kpi.Filters, dim kpi.Dimension) ([]kpi.KeyedSnapshot, error)
	Timeseries(ctx context.Context, metric string, step time.Duration, w kpi.Window, f kpi.Filters, groupBy kpi.Dimension) ([]kpi.Series, error)
	// Trends also returns the time of the newest data its points can hold.
	Trends(ctx context.Context, metrics []string, step time.Duration, w kpi.Window, f kpi.Filters) (map[string][]kpi.Point, time.Time, error)
}

// AlertHistory lists stored alerts. *alerts.Store satisfies it.
type AlertHistory interface {
	ListAlerts(ctx context.Context, state string, from, to time.Time, limit int) ([]alerts.Record, error)
	// LastEvaluation is when the rules were last evaluated and their
	// outcome applied (zero: not known to have been): the firing list is
	// current as of then.
	LastEvaluation(ctx context.Context) (time.Time, error)
}

// AlertActions changes alerts and silences. *alerts.Manager satisfies it.
type AlertActions interface {
	Ack(ctx context.Context, id, by, note string, now time.Time) (alerts.Record, error)
	AddSilence(ctx context.Context, s alerts.Silence, now time.Time) (alerts.Silence, error)
	ExpireSilence(ctx context.Context, id string, now time.Time) (alerts.Silence, error)
	Silences(ctx context.Context, now time.Time) ([]alerts.Silence, error)
}

// RuleService holds the rule set in force. *rules.Evaluator satisfies
// it. The API validates a new set with rules.ParseRules before it calls
// SetRules, so SetRules only ever sees a valid set.
type RuleService interface {
	Rules() *rules.RuleSet
	SetRules(rs *rules.RuleSet)
	Backtest(ctx context.Context, from, to time.Time, step time.Duration) ([]rules.Episode, error)
}

// RuleVersions stores rule sets, so a change reaches every instance and
// survives restarts, and keeps their history. The wiring's rule book
// satisfies it; Replace answers rules.ErrRulesFromFile while the rules
// come from rules.file.
type RuleVersions interface {
	// Writable is nil when the rule set can be replaced (checked before
	// the body is read, so a PUT with rules.file set answers 409 whatever
	// it holds).
	Writable() error
	Replace(ctx context.Context, src []byte, rs *rules.RuleSet, by string) (rules.RuleVersion, error)
	History(ctx context.Context, limit int) ([]rules.RuleVersion, error)
}

// EventProducer writes validated events to the events topic, keyed by
// conversation_id, and returns once they are acknowledged.
type EventProducer interface {
	Produce(ctx context.Context, msgs []kafka.Message) error
}

// ProducerFunc adapts a function to EventProducer, e.g.
//
//	api.ProducerFunc(func(ctx context.Context, m []kafka.Message) error { return w.WriteMessages(ctx, m...) })
//
// for a *kafka.Writer w whose Topic is the events topic.
type ProducerFunc func(ctx context.Context, msgs []kafka.Message) error

// Produce calls f.
func (f ProducerFunc) Produce(ctx context.Context, msgs []kafka.Message) error { return f(ctx, msgs) }

// ConversationReader serves the drill-down. *kpi.ConversationStore (over
// the ClickHouse events table and conversations rollup) satisfies it.
type ConversationReader interface {
	// Conversations calls fn for each conversation matching q, in order
	// (newest first), at most q.Limit when it is positive.
	Conversations(ctx context.Context, q kpi.ConversationQuery, fn func(kpi.Conversation) error) error
	// Conversation returns one conversation and its events in event-time
	// order; an unknown id is kpi.ErrNoConversation.
	Conversation(ctx context.Context, id string) (kpi.Conversation, []schemas.Event, error)
}
