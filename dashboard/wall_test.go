package dashboard

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestWallStartsUnknown: before the stream has said anything, the wall
// claims nothing: the banner says the alert state is not known (never
// "no firing alerts"), every chart's stamp says unknown, and the page
// carries the server's clock to judge the age of the data by.
func TestWallStartsUnknown(t *testing.T) {
	r := newEngine(t, Deps{})
	for _, tc := range []struct{ lang, unknown, allClear, chartUnknown string }{
		{"zh-CN", "告警状态未知", "当前无告警", "数据未知"},
		{"en", "Alert state unknown", "No firing alerts", "unknown"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			before := time.Now().UTC().Add(-time.Second)
			_, body := get(t, r, "/wall?lang="+tc.lang, nil)
			banner := regexp.MustCompile(`(?s)<section id="banner" class="([^"]*)"[^>]*>(.*?)</section>`).FindStringSubmatch(body)
			if banner == nil {
				t.Fatal("no banner")
			}
			if banner[1] != "banner unknown" || !strings.Contains(banner[2], tc.unknown) || strings.Contains(banner[2], tc.allClear) {
				t.Errorf("initial banner: class %q, text %q", banner[1], banner[2])
			}
			for _, id := range []string{ChartWallTimes, ChartWallRates, ChartWallRegions} {
				m := regexp.MustCompile(`<span class="fresh unknown" id="fresh-` + id + `">([^<]*)</span>`).FindStringSubmatch(body)
				if m == nil || m[1] != tc.chartUnknown {
					t.Errorf("chart %s has no unknown stamp: %v", id, m)
				}
			}
			if now := pageConfigOf(t, body).Now; now.Before(before) || now.After(time.Now().Add(time.Second)) {
				t.Errorf("page clock %s, want about now", now)
			}
		})
	}
}
