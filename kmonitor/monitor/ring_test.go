package monitor

import (
	"math"
	"testing"
	"time"
)

func TestRingKeepsTheLatest(t *testing.T) {
	r := newRing(3)
	if _, ok := r.last(); ok {
		t.Error("empty ring: got a last point")
	}
	base := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		r.add(Point{Time: base.Add(time.Duration(i) * time.Second), Lag: int64(i)})
	}
	got := r.since(time.Time{})
	if len(got) != 3 || got[0].Lag != 2 || got[2].Lag != 4 {
		t.Errorf("got %+v, want lags 2, 3, 4", got)
	}
	if got := r.since(base.Add(4 * time.Second)); len(got) != 1 || got[0].Lag != 4 {
		t.Errorf("since the last: got %+v, want lag 4 only", got)
	}
	if last, _ := r.last(); last.Lag != 4 {
		t.Errorf("last: got %d, want 4", last.Lag)
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
