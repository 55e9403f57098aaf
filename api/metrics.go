package api

import (
	"errors"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics times every request by route (the pattern, never the raw
// path, so the labels stay few), method and status code.
type httpMetrics struct {
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer, hub *Hub) (*httpMetrics, error) {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cockpit_http_request_duration_seconds",
		Help:    "Duration of HTTP requests by route, method and status code (a stream request counts when it ends).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "code"})}
	viewers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cockpit_stream_viewers",
		Help: "Viewers connected to the live stream (/api/v1/stream) of this instance.",
	}, func() float64 { return float64(hub.viewers()) })
	for _, c := range []prometheus.Collector{m.duration, viewers} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("api: cannot register metrics"), err)
		}
	}
	return m, nil
}

// middleware observes each request once it is answered.
func (m *httpMetrics) middleware(c *gin.Context) {
	began := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	m.duration.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Observe(time.Since(began).Seconds())
}
