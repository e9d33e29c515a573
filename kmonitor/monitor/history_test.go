package monitor

import (
	"math"
	"testing"
	"time"
)

// TestHistoryRuns: idle modules, with or without an ageing time lag, cost one
// run however many polls they see; a changing lag costs a run per change.
func TestHistoryRuns(t *testing.T) {
	h := newHistory(1000)
	base := time.Unix(1000, 0)
	const polls = 700
	for i := range polls {
		at := base.Add(time.Duration(i) * 5 * time.Second)
		h.add(at, map[string]Point{
			"idle":     {},
			"stuck":    {Lag: 40, Seconds: 90 + at.Sub(base).Seconds()}, // nothing pushed: the oldest record ages
			"steady":   {Lag: 40, Seconds: 90},                          // time lag unknown: the last value stays
			"changing": {Lag: int64(i % 3), Seconds: float64(i % 3)},
		})
	}
	for mod, want := range map[string]int{"idle": 1, "stuck": 1, "steady": 1, "changing": polls} {
		if got := len(h.series[mod].runs); got != want {
			t.Errorf("%s: got %d runs, want %d", mod, got, want)
		}
	}
	pts := h.since(time.Time{}, 0)
	for mod, p := range pts {
		if len(p) != polls {
			t.Fatalf("%s: got %d points, want %d", mod, len(p), polls)
		}
	}
	for i, p := range pts["stuck"] {
		at := base.Add(time.Duration(i) * 5 * time.Second)
		if !p.Time.Equal(at) || p.Lag != 40 || math.Abs(p.Seconds-(90+at.Sub(base).Seconds())) > 1e-6 {
			t.Fatalf("stuck point %d: got %+v, want lag 40 and %v s at %v", i, p, 90+at.Sub(base).Seconds(), at)
		}
	}
	for i, p := range pts["changing"] {
		if p.Lag != int64(i%3) || p.Seconds != float64(i%3) {
			t.Fatalf("changing point %d: got %+v, want lag and seconds %d", i, p, i%3)
		}
	}
	if got := h.since(base.Add(time.Duration(polls-2)*5*time.Second), 0)["idle"]; len(got) != 2 {
		t.Errorf("since the second to last poll: got %d points, want 2", len(got))
	}
}

// TestHistoryBounded: only the last capacity polls are kept, runs that ended
// before them are dropped, and a module without samples for that long is
// forgotten.
func TestHistoryBounded(t *testing.T) {
	const capacity = 10
	h := newHistory(capacity)
	base := time.Unix(1000, 0)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	for i := range 25 {
		mods := map[string]Point{"changing": {Lag: int64(i)}}
		if i < 5 {
			mods["gone"] = Point{Lag: 1}
		}
		h.add(at(i), mods)
	}
	if got := len(h.times); got != capacity {
		t.Errorf("got %d poll times kept, want %d", got, capacity)
	}
	if got := len(h.series["changing"].runs); got != capacity {
		t.Errorf("got %d runs, want %d", got, capacity)
	}
	if _, ok := h.series["gone"]; ok {
		t.Error("a module without samples for the kept span is still there")
	}
	pts := h.since(time.Time{}, 0)["changing"]
	if len(pts) != capacity || pts[0].Lag != 15 || !pts[0].Time.Equal(at(15)) || pts[capacity-1].Lag != 24 {
		t.Errorf("got %+v, want lags 15..24", pts)
	}
	// An idle run that began before the kept span is cut at its start.
	h = newHistory(capacity)
	for i := range 25 {
		h.add(at(i), map[string]Point{"idle": {Lag: 3}})
	}
	if pts := h.since(time.Time{}, 0)["idle"]; len(pts) != capacity || !pts[0].Time.Equal(at(15)) {
		t.Errorf("idle: got %d points from %v, want %d from %v", len(pts), pts[0].Time, capacity, at(15))
	}
}

func TestFormatSeconds(t *testing.T) {
	for in, want := range map[float64]string{
		0: "0", 1.5: "1.5", 1800.12345: "1800.123", -3: "0", math.NaN(): "0", math.Inf(1): "0", 1e9: "1000000000",
	} {
		if got := formatSeconds(in); got != want {
			t.Errorf("formatSeconds(%v): got %s, want %s", in, got, want)
		}
	}
}

// TestHistoryLimit: with a limit, every k-th poll's point and the last are
// returned, at most limit of them, the same polls from one call to the next.
func TestHistoryLimit(t *testing.T) {
	h := newHistory(1000)
	base := time.Unix(1000, 0)
	for i := range 700 {
		h.add(base.Add(time.Duration(i)*time.Second), map[string]Point{"m": {Lag: int64(i)}, "idle": {}})
	}
	for _, limit := range []int{2, 3, 10, 100, 699, 700, 5000} {
		pts := h.since(time.Time{}, limit)
		for mod, p := range pts {
			if len(p) > limit || len(p) < min(limit, 700)/2 {
				t.Errorf("limit %d: %s got %d points", limit, mod, len(p))
			}
			if p[len(p)-1].Time != base.Add(699*time.Second) {
				t.Errorf("limit %d: %s ends at %v, want the last poll", limit, mod, p[len(p)-1].Time)
			}
		}
		for i, p := range pts["m"] {
			if p.Lag != p.Time.Sub(base).Milliseconds()/1000 {
				t.Fatalf("limit %d: point %d has lag %d at %v", limit, i, p.Lag, p.Time)
			}
		}
	}
	if got := len(h.since(base.Add(650*time.Second), 0)["m"]); got != 50 {
		t.Errorf("the last 50 polls: got %d points", got)
	}
	if got := len(h.since(base.Add(650*time.Second), 10)["m"]); got > 10 || got < 5 {
		t.Errorf("the last 50 polls, at most 10: got %d points", got)
	}
}
