package simulate

import "time"

// Zone is the simulated centre's zone, which its daily curve and event
// times follow: Asia/Shanghai without the tz database (China has kept
// UTC+8 without daylight saving since 1991, and a fixed zone cannot fail
// to load on a minimal container).
var Zone = time.FixedZone("CST", 8*3600)

const (
	shanghaiOffsetMs = 8 * 3600 * 1000
	dayMs            = 24 * 3600 * 1000
)

// hourly is the arrival level of each Shanghai hour, as a fraction of the
// peak, taken at the middle of the hour and interpolated linearly between.
// The morning ramp (07:00-10:00) follows the hourly arrivals of
// technion_1day.csv; unlike that bank, a consumer telecom centre has a second
// peak after work (20:00-21:00), when people are home with their broadband
// and TV, so the evening is set by hand.
var hourly = [24]float64{
	0.12, 0.07, 0.045, 0.035, 0.03, 0.04, 0.08, 0.20, 0.45, 0.78, 0.95, 1.00,
	0.80, 0.78, 0.86, 0.88, 0.85, 0.76, 0.70, 0.82, 0.93, 0.88, 0.60, 0.30,
}

// level returns the traffic level at unix milliseconds ms, in (0,1]:
// the diurnal curve, times weekend for Saturday and Sunday, raised to floor.
func level(ms int64, weekend, floor float64) float64 {
	local := ms + shanghaiOffsetMs
	msOfDay := local % dayMs
	if msOfDay < 0 {
		msOfDay += dayMs
	}
	h := float64(msOfDay)/3600e3 - 0.5 // position between hour midpoints
	i := int(h)
	if h < 0 {
		i = -1
	}
	frac := h - float64(i)
	a, b := hourly[(i+24)%24], hourly[(i+1)%24]
	v := a + (b-a)*frac
	days := local / dayMs
	if local < 0 && local%dayMs != 0 {
		days--
	}
	// 1970-01-01 was a Thursday; (days+4)%7 is 0 on Sunday.
	if wd := ((days+4)%7 + 7) % 7; wd == 0 || wd == 6 {
		v *= weekend
	}
	return max(v, floor)
}

// staffing is the share of the planned agents on shift, relative to a plan
// that follows the arrival curve: staff eat lunch in shifts and hand over
// at the evening shift change, so queues wait longer then, as in real
// centres. Planners stagger those breaks to hold the service level, so only
// 5% of the agents are away at a time: a large queue runs at 0.84
// occupancy instead of 0.8, and its waits grow by a tenth (see
// engine.congestion).
func staffing(ms int64) float64 {
	m := ((ms+shanghaiOffsetMs)%dayMs + dayMs) % dayMs / 60000 // minute of day
	switch {
	case m >= 12*60 && m < 13*60+30:
		return 0.95
	case m >= 17*60+30 && m < 19*60:
		return 0.95
	}
	return 1
}
