package dashboard

import (
	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/cockpit-cs/cockpit/api"
	"github.com/cockpit-cs/cockpit/pipeline/kpi"
)

// assetsPath is where the embedded assets are served. go-echarts' own
// default host is a CDN; every chart is pointed here instead.
const assetsPath = "/assets/"

// Chart is one chart of a page: the DOM id the script initialises and the
// ECharts option go-echarts built for it. Series data is filled in by the
// page script with setOption.
type Chart struct {
	ID     string         `json:"id"`
	Theme  string         `json:"theme"`
	Option map[string]any `json:"option"`
	// Series names the metric behind each series, in order, for charts
	// the script fills from /api/v1/timeseries (e.g. "service_level").
	Series []string `json:"series,omitempty"`
}

// Stable chart ids: page scripts and browser tests find charts by them.
const (
	ChartWallTimes   = "wall-trend-times"
	ChartWallRates   = "wall-trend-rates"
	ChartWallRegions = "wall-complaints-region"
	ChartQuality     = "quality-breakdown"
)

func initOpts(id, theme string) charts.GlobalOpts {
	return charts.WithInitializationOpts(opts.Initialization{
		ChartID: id, Theme: theme, AssetsHost: assetsPath, BackgroundColor: "transparent",
		Width: "100%", Height: "100%",
	})
}

func metricLabel(lang, name string) string {
	m, ok := kpi.MetricByName(name)
	if !ok {
		return name
	}
	if lang == LangEN {
		return m.LabelEN
	}
	return m.LabelZH
}

// trendChart is a last-60-minutes line chart of the given timeseries
// metrics (name as /api/v1/timeseries takes it, e.g. "human_wait_seconds.p90").
func trendChart(lang, id, title, unit string, series []string, metrics []string) Chart {
	line := charts.NewLine()
	line.SetGlobalOptions(
		initOpts(id, "dark"),
		charts.WithTitleOpts(opts.Title{Title: title, Left: "center", TitleStyle: &opts.TextStyle{FontSize: 20}}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "36", TextStyle: &opts.TextStyle{FontSize: 14}}),
		charts.WithGridOpts(opts.Grid{Left: "56", Right: "24", Top: "76", Bottom: "32"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "time"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: unit}),
		charts.WithAnimation(false),
	)
	for _, name := range series {
		line.AddSeries(name, []opts.LineData{}, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Smooth: opts.Bool(true)}))
	}
	line.Validate()
	return Chart{ID: id, Theme: "dark", Option: line.JSON(), Series: metrics}
}

// wallCharts are the wall's trend and regional charts.
func wallCharts(lang string) []Chart {
	// The stream's wall panel carries these series (api.WallTrends): the
	// durations first, then the rates.
	times, rates := api.WallTrends[:2], api.WallTrends[2:]
	names := func(ms []string) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			name, _, _ := cutDot(m)
			out[i] = metricLabel(lang, name)
		}
		return out
	}
	return []Chart{
		trendChart(lang, ChartWallTimes, tr(lang, "trend.times"), "s", names(times), times),
		trendChart(lang, ChartWallRates, tr(lang, "trend.rates"), "%", names(rates), rates),
		rankingChart(lang, ChartWallRegions, tr(lang, "regions"), "dark", metricLabel(lang, kpi.MetricComplaints), true),
	}
}

// rankingChart is a bar chart whose categories the script fills; a
// horizontal one ranks the biggest first at the top.
func rankingChart(lang, id, title, theme, series string, horizontal bool) Chart {
	bar := charts.NewBar()
	fs := 14
	if theme == "dark" {
		fs = 20
	}
	g := []charts.GlobalOpts{
		initOpts(id, theme),
		charts.WithTitleOpts(opts.Title{Title: title, Left: "center", TitleStyle: &opts.TextStyle{FontSize: fs}}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithAnimation(false),
	}
	if horizontal {
		g = append(g,
			charts.WithGridOpts(opts.Grid{Left: "110", Right: "40", Top: "48", Bottom: "24"}),
			charts.WithXAxisOpts(opts.XAxis{Type: "value"}),
			charts.WithYAxisOpts(opts.YAxis{Type: "category", Inverse: opts.Bool(true), AxisLabel: &opts.AxisLabel{Interval: "0"}}))
	} else {
		g = append(g,
			charts.WithGridOpts(opts.Grid{Left: "56", Right: "24", Top: "48", Bottom: "84"}),
			charts.WithXAxisOpts(opts.XAxis{Type: "category", AxisLabel: &opts.AxisLabel{Interval: "0", Rotate: 30}}),
			charts.WithYAxisOpts(opts.YAxis{Type: "value"}))
	}
	bar.SetGlobalOptions(g...)
	bar.AddSeries(series, []opts.BarData{})
	bar.Validate()
	return Chart{ID: id, Theme: theme, Option: bar.JSON()}
}

// qualityCharts is the drill-down page's breakdown chart.
func qualityCharts(lang string) []Chart {
	return []Chart{rankingChart(lang, ChartQuality, tr(lang, "breakdown"), "", "", false)}
}

func cutDot(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
