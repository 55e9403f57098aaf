package kpi

import (
	"fmt"
	"time"
)

// Window is the half-open event-time range [From, To).
type Window struct {
	From time.Time
	To   time.Time
}

// Validate checks that the window is not empty.
func (w Window) Validate() error {
	if !w.From.Before(w.To) {
		return fmt.Errorf("window from %s must be before to %s", w.From.Format(time.RFC3339Nano), w.To.Format(time.RFC3339Nano))
	}
	return nil
}

// Filters restrict KPIs to conversations with these attributes; an empty
// field does not filter. Region, Queue, Channel and BusinessLine are the
// attributes of the conversation's conversation.started (a complaint's own
// region, queue and business line when it carries them); Agent keeps the
// conversations that agent handled (was assigned to or wrote in).
type Filters struct {
	Region       string `json:"region,omitempty"`
	Queue        string `json:"queue,omitempty"`
	Channel      string `json:"channel,omitempty"`
	BusinessLine string `json:"business_line,omitempty"`
	Agent        string `json:"agent,omitempty"`
}

// Dimension is an attribute KPIs can be broken down by.
type Dimension string

// The dimensions of SPEC §7. DimNone means no breakdown.
const (
	DimNone         Dimension = ""
	DimRegion       Dimension = "region"
	DimQueue        Dimension = "queue"
	DimChannel      Dimension = "channel"
	DimBusinessLine Dimension = "business_line"
	DimAgent        Dimension = "agent"
)

// Dimensions lists the dimensions KPIsBy accepts.
var Dimensions = []Dimension{DimRegion, DimQueue, DimChannel, DimBusinessLine, DimAgent}

// Quantile is a distribution metric. Avg is exact; P50 and P90
// interpolate between order statistics (as quantilesExactInclusive does)
// taken from a histogram of 1%-wide buckets, so they are within 0.5% of
// the exact values (hist.go). All three are nil when Count is 0.
type Quantile struct {
	Avg   *float64 `json:"avg"`
	P50   *float64 `json:"p50"`
	P90   *float64 `json:"p90"`
	Count uint64   `json:"count"`
}

// Snapshot holds every SPEC §5 metric over one window and filter set. It
// serialises to the body of GET /api/v1/kpis. Ratios and means are nil
// when their denominator is 0. ActiveConversations and WaitingForHuman
// are gauges taken at the time of the query, whatever the window.
type Snapshot struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Filters Filters   `json:"filters"`
	// AsOf is when the numbers were read from the store: the time of the
	// newest data they can hold (the live view's last refresh, or the
	// query itself).
	AsOf time.Time `json:"-"`

	ConversationsStarted      uint64   `json:"conversations_started"`
	ConversationsClosed       uint64   `json:"conversations_closed"`
	ResolutionRate            *float64 `json:"resolution_rate"`
	TransferRate              *float64 `json:"transfer_rate"`
	BotContainmentRate        *float64 `json:"bot_containment_rate"`
	AbandonRate               *float64 `json:"abandon_rate"`
	FirstResponseSeconds      Quantile `json:"first_response_seconds"`
	HumanFirstResponseSeconds Quantile `json:"human_first_response_seconds"`
	ResponseSeconds           Quantile `json:"response_seconds"`
	HumanWaitSeconds          Quantile `json:"human_wait_seconds"`
	ServiceLevel              *float64 `json:"service_level"`
	Complaints                uint64   `json:"complaints"`
	CSATAvg                   *float64 `json:"csat_avg"`
	CSATSatisfiedRate         *float64 `json:"csat_satisfied_rate"`
	NegativeSentimentRate     *float64 `json:"negative_sentiment_rate"`
	ActiveConversations       uint64   `json:"active_conversations"`
	WaitingForHuman           uint64   `json:"waiting_for_human"`

	// Denominators, kept for Value's volume.
	abandoned, botEnded, transfersFinished, csatCount, sentimentCount uint64
}

// KeyedSnapshot is the snapshot of one value of a dimension.
type KeyedSnapshot struct {
	Key string `json:"key"`
	Snapshot
}

// Point is one value of a time series: the metric over [Time, Time+step).
// Value is nil when the metric has no value in that step.
type Point struct {
	Time  time.Time
	Value *float64
}

// Series is a metric over consecutive steps for one value of a dimension
// (Key is "" without a breakdown).
type Series struct {
	Key    string
	Points []Point
}
