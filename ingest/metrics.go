package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the consumer's Prometheus series.
type metrics struct {
	consumed     prometheus.Counter
	inserted     prometheus.Counter
	rejected     *prometheus.CounterVec
	batchRows    prometheus.Histogram
	batchSeconds prometheus.Histogram
	lag          *prometheus.GaugeVec
	retries      *prometheus.CounterVec
	replays      prometheus.Counter
	duplicates   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cockpit_ingest_consumed_total", Help: "Records read from the events topic.",
		}),
		inserted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cockpit_ingest_inserted_total", Help: "Events inserted into ClickHouse (replayed batches count again).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cockpit_ingest_rejected_total", Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cockpit_ingest_batch_rows", Help: "Records per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cockpit_ingest_batch_seconds", Help: "Time to store and commit one batch (intent, insert, dead letters, commit).",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 13),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cockpit_ingest_lag_records", Help: "Records between the partition's high watermark and the next offset to read.",
		}, []string{"partition"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cockpit_ingest_retries_total", Help: "Failed attempts that were retried, by step.",
		}, []string{"step"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cockpit_ingest_replays_total", Help: "Batches replayed from the intent log after a restart or rebalance.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cockpit_ingest_duplicates_total",
			Help: "Records not stored because their event_id was stored before (the first version wins); each is in the dead-letter topic with reason duplicate_event_id.",
		}),
	}
	for _, c := range []prometheus.Collector{m.consumed, m.inserted, m.rejected, m.batchRows, m.batchSeconds, m.lag, m.retries, m.replays, m.duplicates} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
