package monitor

import (
	"sort"
	"time"
)

// history keeps one cluster's module lag samples: per module, its total lag and
// largest time lag at every poll of the last historySpan. The poll times are
// kept once for all modules (a ring of at most capacity times); each module keeps
// runs of polls instead of points: consecutive polls with the same lag whose time
// lag either stayed the same or grew with the clock, as it does while a module
// pushes nothing and its oldest waiting record just ages. An idle module costs one
// run however long it stays idle, a module whose lag changes at every poll one run
// per poll, and nothing is allocated ahead of the samples.
//
// history is not safe for concurrent use; the cluster's mutex guards it.
type history struct {
	times    []int64 // poll times in Unix nanoseconds: poll seq is at times[seq%capacity]
	capacity int
	next     uint64 // seq of the next poll
	series   map[string]*series
}

// series is one module's runs, oldest first.
type series struct{ runs []run }

// run is polls start..start+n-1 of one module: lag each time, and a time lag of
// secs at the first poll (time t0), constant or, with growing, growing with the
// poll times.
type run struct {
	start   uint64
	t0      int64
	secs    float64
	lag     int64
	n       uint32
	growing bool
}

// secondsEpsilon is how far a time lag may be from the one a run predicts and
// still belong to it: far below the millisecond precision of every output.
const secondsEpsilon = 1e-6

func newHistory(capacity int) *history {
	return &history{capacity: max(capacity, 1), series: map[string]*series{}}
}

// oldest returns the seq of the oldest poll kept.
func (h *history) oldest() uint64 { return h.next - uint64(len(h.times)) }

// timeOf returns the time of poll seq, which must be kept.
func (h *history) timeOf(seq uint64) int64 { return h.times[seq%uint64(h.capacity)] }

// add records one poll at t with the samples of the modules in mods; modules
// without a sample get none. Modules whose last sample fell out of the kept span
// are forgotten.
func (h *history) add(t time.Time, mods map[string]Point) {
	seq := h.next
	if len(h.times) < h.capacity {
		h.times = append(h.times, t.UnixNano())
	} else {
		h.times[seq%uint64(h.capacity)] = t.UnixNano()
	}
	h.next++
	oldest := h.oldest()
	for mod, p := range mods {
		s := h.series[mod]
		if s == nil {
			s = &series{}
			h.series[mod] = s
		}
		s.add(seq, t.UnixNano(), p.Lag, p.Seconds)
		s.trim(oldest)
	}
	for mod, s := range h.series {
		if r := s.runs[len(s.runs)-1]; r.start+uint64(r.n) <= oldest {
			delete(h.series, mod)
		}
	}
}

// add appends the sample of poll seq at t.
func (s *series) add(seq uint64, t, lag int64, secs float64) {
	if i := len(s.runs) - 1; i >= 0 {
		r := &s.runs[i]
		if r.start+uint64(r.n) == seq && r.lag == lag {
			elapsed := float64(t-r.t0) / 1e9
			switch {
			case r.n == 1 && near(secs, r.secs):
				r.n++
				return
			case r.n == 1 && near(secs, r.secs+elapsed):
				r.n, r.growing = 2, true
				return
			case r.n > 1 && near(secs, r.at(t)):
				r.n++
				return
			}
		}
	}
	s.runs = append(s.runs, run{start: seq, t0: t, secs: secs, lag: lag, n: 1})
}

// trim drops the runs that ended before poll oldest. The slice is re-sliced, so
// the next growth of runs copies only the kept ones.
func (s *series) trim(oldest uint64) {
	k := 0
	for k < len(s.runs)-1 && s.runs[k].start+uint64(s.runs[k].n) <= oldest {
		k++
	}
	s.runs = s.runs[k:]
}

// at returns the run's time lag at time t.
func (r *run) at(t int64) float64 {
	if !r.growing {
		return r.secs
	}
	return r.secs + float64(t-r.t0)/1e9
}

func near(a, b float64) bool { return a-b <= secondsEpsilon && b-a <= secondsEpsilon }

// since returns each module's points at or after t, oldest first, at most
// limit of them (at least 2; 0 means no limit): with more, every k-th poll's is
// taken (polls whose number k divides, so a chart keeps its points from one
// refresh to the next) and the last. Modules without a point are left out.
func (h *history) since(t time.Time, limit int) map[string][]Point {
	from := t.UnixNano()
	oldest := h.oldest()
	// The first poll at or after t: times grow with the poll number.
	first := oldest + uint64(sort.Search(int(h.next-oldest), func(i int) bool { return h.timeOf(oldest+uint64(i)) >= from }))
	out := make(map[string][]Point)
	for mod, s := range h.series {
		count := uint64(0)
		for i := range s.runs {
			r := &s.runs[i]
			if end := r.start + uint64(r.n); end > first {
				count += end - max(r.start, first)
			}
		}
		if count == 0 {
			continue
		}
		stride := uint64(1)
		if limit > 0 {
			l := uint64(max(limit, 2)) - 1 // the last point comes on top
			stride = max((count+l-1)/l, 1)
		}
		last := s.runs[len(s.runs)-1]
		lastSeq := last.start + uint64(last.n) - 1
		pts := make([]Point, 0, min(count, count/stride+2))
		for i := range s.runs {
			r := &s.runs[i]
			for seq := max(r.start, first); seq < r.start+uint64(r.n); seq++ {
				if seq%stride != 0 && seq != lastSeq {
					continue
				}
				at := h.timeOf(seq)
				pts = append(pts, Point{Time: time.Unix(0, at), Lag: r.lag, Seconds: r.at(at)})
			}
		}
		out[mod] = pts
	}
	return out
}

// modules returns the number of modules with samples kept.
func (h *history) modules() int { return len(h.series) }
