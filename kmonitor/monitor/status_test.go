package monitor

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// seq builds samples with an owner from committed offsets and lags; a committed
// offset of -1 means no commit.
func seq(committed []int64, lags []int64) []sample {
	out := make([]sample, len(committed))
	for i := range committed {
		out[i] = sample{committed: committed[i], hasCommit: committed[i] >= 0, hasOwner: true, lag: lags[i]}
		if committed[i] < 0 {
			out[i].committed = 0
		}
	}
	return out
}

func TestEvaluate(t *testing.T) {
	noOwner := seq([]int64{5, 5, 5, 5}, []int64{0, 0, 0, 0})
	for i := range noOwner {
		noOwner[i].hasOwner = false
	}
	partlyOwned := seq([]int64{5, 5, 5, 5}, []int64{3, 3, 3, 3})
	for i := range partlyOwned[:3] {
		partlyOwned[i].hasOwner = false
	}
	tests := []struct {
		name    string
		samples []sample
		want    Status
	}{
		{"caught up", seq([]int64{1, 2, 3, 4}, []int64{0, 0, 0, 0}), StatusOK},
		{"lag falls", seq([]int64{1, 3, 5, 7}, []int64{9, 7, 5, 3}), StatusOK},
		{"lag reached zero once", seq([]int64{1, 3, 5, 7}, []int64{5, 0, 6, 8}), StatusOK},
		{"lag steady while moving", seq([]int64{1, 3, 5, 7}, []int64{4, 4, 4, 4}), StatusOK},
		{"lag grows while commits move", seq([]int64{1, 2, 3, 4}, []int64{2, 3, 3, 9}), StatusWarn},
		{"lag grows, one dip", seq([]int64{1, 2, 3, 4}, []int64{2, 5, 4, 9}), StatusOK},
		{"commits stuck with lag", seq([]int64{7, 7, 7, 7}, []int64{1, 2, 3, 4}), StatusStall},
		{"commits stuck without lag", seq([]int64{7, 7, 7, 7}, []int64{0, 0, 0, 0}), StatusOK},
		{"no owner all window", noOwner, StatusStop},
		{"owner came back", partlyOwned, StatusStall},
		{"no commit all window", seq([]int64{-1, -1, -1, -1}, []int64{0, 0, 0, 0}), StatusStop},
		{"first commit arrived", seq([]int64{-1, -1, -1, 4}, []int64{0, 0, 0, 2}), StatusOK},
		{"rewind", seq([]int64{10, 12, 3, 4}, []int64{0, 0, 9, 8}), StatusRewind},
		{"rewind in a short window", seq([]int64{10, 3}, []int64{0, 7}), StatusRewind},
		{"rewind beats stop", func() []sample {
			s := seq([]int64{10, 12, 3, 4}, []int64{1, 1, 1, 1})
			for i := range s {
				s[i].hasOwner = false
			}
			return s
		}(), StatusRewind},
		{"window not full", seq([]int64{7, 7}, []int64{3, 4}), StatusOK},
		{"rewind left the window", seq([]int64{9, 1, 2, 3, 4, 5}, []int64{0, 0, 0, 0, 0, 0}), StatusOK},
		{"only the last window counts", seq([]int64{1, 2, 2, 2, 2}, []int64{0, 5, 5, 5, 5}), StatusStall},
		{"out of range at once", outOfRange(seq([]int64{500}, []int64{200}), 0), StatusOutOfRange},
		{"out of range beats rewind and stop", func() []sample {
			s := outOfRange(seq([]int64{10, 3, 500, 500}, []int64{1, 1, 200, 200}), 2, 3)
			for i := range s {
				s[i].hasOwner = false
			}
			return s
		}(), StatusOutOfRange},
		{"reset to the log start rewinds", outOfRange(seq([]int64{500, 500, 0, 40}, []int64{200, 200, 200, 160}), 0, 1), StatusRewind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := judge(tt.samples, 4); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if got := evaluateSamples(tt.samples, 4); got != tt.want {
				t.Errorf("reference: got %v, want %v", got, tt.want)
			}
		})
	}
}

// judge adds samples, oldest first, to a window of window and evaluates them.
func judge(in []sample, window int) Status {
	var ss samples
	for _, s := range in {
		ss.add(s, window)
	}
	return ss.evaluate(window)
}

// evaluateSamples is the status rules of samples.evaluate written for a plain
// list of samples, the reference the runs are checked against.
func evaluateSamples(samples []sample, window int) Status {
	if len(samples) > window {
		samples = samples[len(samples)-window:]
	}
	if len(samples) > 0 && samples[len(samples)-1].oor {
		return StatusOutOfRange
	}
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		if a.hasCommit && b.hasCommit && b.committed < a.committed {
			return StatusRewind
		}
	}
	if len(samples) < window || window < 2 {
		return StatusOK
	}
	owned, committed := false, false
	for _, s := range samples {
		owned = owned || s.hasOwner
		committed = committed || s.hasCommit
	}
	if !owned || !committed {
		return StatusStop
	}
	first, last := samples[0], samples[len(samples)-1]
	for _, s := range samples {
		if !s.hasCommit || s.lag == 0 {
			return StatusOK
		}
	}
	if first.committed == last.committed {
		return StatusStall
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].lag < samples[i-1].lag {
			return StatusOK
		}
	}
	if last.lag > first.lag {
		return StatusWarn
	}
	return StatusOK
}

// TestSampleRunsAgreeWithReference feeds random sample sequences, one sample at
// a time, to samples and to the reference over the same window: the statuses
// agree after every sample, and runs never hold more than the window.
func TestSampleRunsAgreeWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[Status]int{}
	for trial := range 3000 {
		window := 2 + rng.IntN(6)
		var ss samples
		var all []sample
		committed := int64(rng.IntN(5))
		for i := range 30 {
			// Few distinct values, so runs, stalls and rewinds all occur.
			switch rng.IntN(4) {
			case 0:
				committed += int64(rng.IntN(3))
			case 1:
				committed -= int64(rng.IntN(2))
			}
			s := sample{committed: committed, lag: int64(rng.IntN(3)), hasCommit: rng.IntN(8) > 0,
				hasOwner: rng.IntN(6) > 0, oor: rng.IntN(20) == 0}
			if !s.hasCommit {
				s.committed = 0
			}
			all = append(all, s)
			ss.add(s, window)
			got, want := ss.evaluate(window), evaluateSamples(all, window)
			if got != want {
				t.Fatalf("trial %d, sample %d, window %d: got %v, want %v for %+v", trial, i, window, got, want, all)
			}
			seen[got]++
			if int(ss.count) != min(len(all), window) || len(ss.runs) > window {
				t.Fatalf("trial %d: %d samples in %d runs, want %d in at most %d", trial, ss.count, len(ss.runs), min(len(all), window), window)
			}
		}
	}
	for st := StatusOK; st <= StatusOutOfRange; st++ {
		if seen[st] == 0 {
			t.Errorf("no sequence gave %v; the test does not cover it", st)
		}
	}
}

// TestIdleSamplesOneRun: a partition nothing happens to keeps one run.
func TestIdleSamplesOneRun(t *testing.T) {
	var ss samples
	for range 1000 {
		ss.add(sample{lag: 7}, 10)
	}
	if len(ss.runs) != 1 || ss.count != 10 {
		t.Errorf("got %d runs of %d samples, want 1 of 10", len(ss.runs), ss.count)
	}
}

// outOfRange marks samples i as out of range.
func outOfRange(s []sample, i ...int) []sample {
	for _, j := range i {
		s[j].oor = true
	}
	return s
}

func TestStatusJSON(t *testing.T) {
	for s := StatusOK; s <= StatusOutOfRange; s++ {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Status
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("%s: round trip got %v (%v), want %v", b, back, err, s)
		}
	}
	if got := Status(99).String(); got != "UNKNOWN" {
		t.Errorf("got %q, want UNKNOWN", got)
	}
	if b, _ := json.Marshal(StatusStall); string(b) != `"STALL"` {
		t.Errorf("got %s, want \"STALL\"", b)
	}
	// /metrics exports the numbers; the README documents this mapping.
	for s, want := range []string{"OK", "WARN", "STALL", "STOP", "REWIND", "OUT_OF_RANGE"} {
		if got := Status(s).String(); got != want {
			t.Errorf("status %d: got %s, want %s", s, got, want)
		}
	}
}

func TestZabbixKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"test_cluster.test_module_1.0.delay", "test_cluster.test_module_1.0.delay"},
		{"c.my module.0.delay", `"c.my module.0.delay"`},
		{`c.a"b\c.1.delay`, `"c.a\"b\\c.1.delay"`},
		{"c.line\nbreak.2.delay", "c.line?break.2.delay"},
	} {
		if got := zabbixKey(tc.in); got != tc.want {
			t.Errorf("zabbixKey(%q): got %s, want %s", tc.in, got, tc.want)
		}
	}
}
