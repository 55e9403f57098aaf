package kpi

import (
	"fmt"
	"slices"
)

// MetricKind says how a metric is aggregated and shown.
type MetricKind string

// The kinds of SPEC §5 metrics.
const (
	// MetricCount is a number of events in the window.
	MetricCount MetricKind = "count"
	// MetricRatio is a share in [0,1], null when its denominator is 0.
	MetricRatio MetricKind = "ratio"
	// MetricMean is an exact mean, null when there is nothing to average.
	MetricMean MetricKind = "mean"
	// MetricQuantile is a distribution: {avg, p50, p90, count}.
	MetricQuantile MetricKind = "quantile"
	// MetricGauge is a value "now", not over a window.
	MetricGauge MetricKind = "gauge"
)

// Metric describes one metric of SPEC §5. Name is the wire name used by
// the API, the wall and the rules.
type Metric struct {
	Name       string
	Kind       MetricKind
	Unit       string // "1" for counts and ratios, "s", "score"
	LabelZH    string
	LabelEN    string
	Definition string
}

// Names of the SPEC §5 metrics.
const (
	MetricConversationsStarted      = "conversations_started"
	MetricConversationsClosed       = "conversations_closed"
	MetricResolutionRate            = "resolution_rate"
	MetricTransferRate              = "transfer_rate"
	MetricBotContainmentRate        = "bot_containment_rate"
	MetricAbandonRate               = "abandon_rate"
	MetricFirstResponseSeconds      = "first_response_seconds"
	MetricHumanFirstResponseSeconds = "human_first_response_seconds"
	MetricResponseSeconds           = "response_seconds"
	MetricHumanWaitSeconds          = "human_wait_seconds"
	MetricServiceLevel              = "service_level"
	MetricComplaints                = "complaints"
	MetricCSATAvg                   = "csat_avg"
	MetricCSATSatisfiedRate         = "csat_satisfied_rate"
	MetricNegativeSentimentRate     = "negative_sentiment_rate"
	MetricActiveConversations       = "active_conversations"
	MetricWaitingForHuman           = "waiting_for_human"
)

// Metrics is the registry of SPEC §5 metrics, in the order of the SPEC.
// The SQL behind each definition is in store_sql.go, next to a copy of
// the definition.
var Metrics = []Metric{
	{MetricConversationsStarted, MetricCount, "1", "会话开始数", "Conversations started",
		"conversation.started events in W"},
	{MetricConversationsClosed, MetricCount, "1", "会话结束数", "Conversations closed",
		"conversation.closed events in W"},
	{MetricResolutionRate, MetricRatio, "1", "解决率", "Resolution rate",
		"closed in W with resolution=resolved ÷ conversations_closed"},
	{MetricTransferRate, MetricRatio, "1", "转人工率", "Transfer rate",
		"of conversations with entry=bot that ended (closed or abandoned) in W, the share with ≥1 transfer.requested"},
	{MetricBotContainmentRate, MetricRatio, "1", "机器人独立解决率", "Bot containment rate",
		"of conversations with entry=bot that ended in W, the share closed resolved with no transfer and no agent"},
	{MetricAbandonRate, MetricRatio, "1", "放弃率", "Abandon rate",
		"conversation.abandoned in W ÷ (closed + abandoned in W)"},
	{MetricFirstResponseSeconds, MetricQuantile, "s", "首次响应时长", "First response time",
		"over conversations started in W with a reply: first reply − start"},
	{MetricHumanFirstResponseSeconds, MetricQuantile, "s", "人工首次响应时长", "Human first response time",
		"over conversations started in W with an agent message: first agent message − start"},
	{MetricResponseSeconds, MetricQuantile, "s", "响应时长", "Response time",
		"over customer messages in W followed by a reply: that reply − the message"},
	{MetricHumanWaitSeconds, MetricQuantile, "s", "等待人工时长", "Wait for a human",
		"over transfer.requested in W followed by agent.assigned: assigned − requested"},
	{MetricServiceLevel, MetricRatio, "1", "服务水平", "Service level",
		"of transfer.requested in W that finished (assigned, or abandoned), the share assigned within the threshold (default 20 s)"},
	{MetricComplaints, MetricCount, "1", "投诉数", "Complaints",
		"complaint.filed events in W (filtered by the complaint's own region)"},
	{MetricCSATAvg, MetricMean, "score", "满意度均分", "CSAT average",
		"mean score of csat.submitted in W"},
	{MetricCSATSatisfiedRate, MetricRatio, "1", "满意率", "CSAT satisfied rate",
		"share of csat.submitted in W with score ≥ 4"},
	{MetricNegativeSentimentRate, MetricRatio, "1", "负面情绪率", "Negative sentiment rate",
		"of customer messages in W that carry a sentiment, the share below -0.3"},
	{MetricActiveConversations, MetricGauge, "1", "进行中会话", "Active conversations",
		"now: started within 24 h, not closed or abandoned"},
	{MetricWaitingForHuman, MetricGauge, "1", "等待人工", "Waiting for a human",
		"now: transfer.requested with no later agent.assigned, close or abandon"},
}

// MetricByName returns the registered metric called name.
func MetricByName(name string) (Metric, bool) {
	i := slices.IndexFunc(Metrics, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		return Metric{}, false
	}
	return Metrics[i], true
}

// QuantileStats are the statistics a quantile metric offers.
var QuantileStats = []string{"avg", "p50", "p90", "count"}

// Value returns one metric of the snapshot as a number: nil when it has
// no value (empty denominator). stat picks avg, p50, p90 or count of a
// quantile metric and must be empty for the others. volume is the
// metric's denominator (its sample count for quantiles, the value itself
// for counts and gauges).
func (s *Snapshot) Value(metric, stat string) (value *float64, volume uint64, err error) {
	m, ok := MetricByName(metric)
	if !ok {
		return nil, 0, fmt.Errorf("unknown metric %q", metric)
	}
	if m.Kind == MetricQuantile {
		q := s.quantile(metric)
		switch stat {
		case "avg":
			return q.Avg, q.Count, nil
		case "p50":
			return q.P50, q.Count, nil
		case "p90":
			return q.P90, q.Count, nil
		case "count":
			c := float64(q.Count)
			return &c, q.Count, nil
		}
		return nil, 0, fmt.Errorf("metric %s needs a stat (avg, p50, p90 or count), got %q", metric, stat)
	}
	if stat != "" {
		return nil, 0, fmt.Errorf("metric %s has no stat %q", metric, stat)
	}
	count := func(n uint64) (*float64, uint64, error) { v := float64(n); return &v, n, nil }
	switch metric {
	case MetricConversationsStarted:
		return count(s.ConversationsStarted)
	case MetricConversationsClosed:
		return count(s.ConversationsClosed)
	case MetricComplaints:
		return count(s.Complaints)
	case MetricActiveConversations:
		return count(s.ActiveConversations)
	case MetricWaitingForHuman:
		return count(s.WaitingForHuman)
	case MetricResolutionRate:
		return s.ResolutionRate, s.ConversationsClosed, nil
	case MetricTransferRate:
		return s.TransferRate, s.botEnded, nil
	case MetricBotContainmentRate:
		return s.BotContainmentRate, s.botEnded, nil
	case MetricAbandonRate:
		return s.AbandonRate, s.ConversationsClosed + s.abandoned, nil
	case MetricServiceLevel:
		return s.ServiceLevel, s.transfersFinished, nil
	case MetricCSATAvg:
		return s.CSATAvg, s.csatCount, nil
	case MetricCSATSatisfiedRate:
		return s.CSATSatisfiedRate, s.csatCount, nil
	case MetricNegativeSentimentRate:
		return s.NegativeSentimentRate, s.sentimentCount, nil
	}
	return nil, 0, fmt.Errorf("metric %s has no value in a snapshot", metric)
}

func (s *Snapshot) quantile(metric string) Quantile {
	switch metric {
	case MetricFirstResponseSeconds:
		return s.FirstResponseSeconds
	case MetricHumanFirstResponseSeconds:
		return s.HumanFirstResponseSeconds
	case MetricResponseSeconds:
		return s.ResponseSeconds
	default:
		return s.HumanWaitSeconds
	}
}
