package alerts

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DeliveryMetrics count notification attempts by receiver and integration,
// named as Alertmanager names its own.
type DeliveryMetrics struct {
	integration map[string]string
	sentTotal   *prometheus.CounterVec
	failedTotal *prometheus.CounterVec
	retryTotal  *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	delay       *prometheus.HistogramVec
}

// NewDeliveryMetrics registers the delivery metrics on reg; integrations
// names the integration of each receiver (webhook, dingtalk, …).
func NewDeliveryMetrics(reg prometheus.Registerer, integrations map[string]string) (*DeliveryMetrics, error) {
	labels := []string{"receiver", "integration"}
	m := &DeliveryMetrics{
		integration: integrations,
		sentTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cockpit_notifications_sent_total",
			Help: "Notifications the receiver accepted.",
		}, labels),
		failedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cockpit_notifications_failed_total",
			Help: "Notifications given up on: the receiver refused them for good, or they could not be delivered within give_up_after.",
		}, labels),
		retryTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cockpit_notifications_retried_total",
			Help: "Failed delivery attempts that will be tried again after a back-off.",
		}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cockpit_notification_latency_seconds",
			Help:    "Duration of one delivery attempt, whatever its outcome.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, labels),
		delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cockpit_notification_delivery_delay_seconds",
			Help:    "Time from a notification's queueing in the outbox to its acceptance by the receiver (retries included).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
		}, labels),
	}
	for _, c := range []prometheus.Collector{m.sentTotal, m.failedTotal, m.retryTotal, m.latency, m.delay} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("alerts: cannot register delivery metrics"), err)
		}
	}
	return m, nil
}

func (m *DeliveryMetrics) labels(recv string) []string {
	integ := m.integration[recv]
	if integ == "" {
		integ = "unknown"
	}
	return []string{recv, integ}
}

func (m *DeliveryMetrics) observe(recv string, d time.Duration, _ error) {
	if m != nil {
		m.latency.WithLabelValues(m.labels(recv)...).Observe(d.Seconds())
	}
}

func (m *DeliveryMetrics) sent(recv string, queued time.Duration) {
	if m != nil {
		m.sentTotal.WithLabelValues(m.labels(recv)...).Inc()
		m.delay.WithLabelValues(m.labels(recv)...).Observe(max(queued, 0).Seconds())
	}
}

func (m *DeliveryMetrics) failed(recv string) {
	if m != nil {
		m.failedTotal.WithLabelValues(m.labels(recv)...).Inc()
	}
}

func (m *DeliveryMetrics) retried(recv string) {
	if m != nil {
		m.retryTotal.WithLabelValues(m.labels(recv)...).Inc()
	}
}
