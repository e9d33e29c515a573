package monitor

import "encoding/json"

// Status is a module partition's health, judged over the last status_window
// samples as Burrow judges consumer partitions.
type Status int

// The statuses, in increasing severity; /metrics exports them as these numbers.
const (
	// StatusOK: lag reached 0 within the window, or it does not keep growing.
	StatusOK Status = iota
	// StatusWarn: the lag grew over the whole window although commits moved: the
	// module is slower than its producers.
	StatusWarn
	// StatusStall: the committed offset did not move over the whole window while
	// lag was above 0 and an owner holds the partition: it is stuck.
	StatusStall
	// StatusStop: no instance owned the partition, or it had no committed offset,
	// for the whole window: nobody is pushing it.
	StatusStop
	// StatusRewind: the committed offset went backwards within the window.
	StatusRewind
	// StatusOutOfRange: at the last poll the committed offset lay outside the
	// partition's log (above the log end: the topic was recreated or the log
	// truncated; below the log start: retention deleted records not yet pushed).
	// Resuming there loses records; see outOfRange for the lag reported then.
	StatusOutOfRange
)

var statusNames = [...]string{"OK", "WARN", "STALL", "STOP", "REWIND", "OUT_OF_RANGE"}

// String returns the status's name: OK, WARN, STALL, STOP, REWIND or
// OUT_OF_RANGE.
func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return "UNKNOWN"
	}
	return statusNames[s]
}

// MarshalJSON writes the status as its name.
func (s Status) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a status name.
func (s *Status) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	for i, n := range statusNames {
		if n == name {
			*s = Status(i)
			return nil
		}
	}
	*s = StatusOK
	return nil
}

// sample is one poll's view of a module partition. Samples are comparable:
// equal ones in a row are kept as one run.
type sample struct {
	committed int64 // valid when hasCommit
	lag       int64
	hasCommit bool
	hasOwner  bool
	oor       bool // the committed offset was out of range (see position)
}

// sampleOf returns the sample a poll takes of row r.
func sampleOf(r *PartitionLag) sample {
	s := sample{hasCommit: r.Committed != nil, hasOwner: r.Owner != "", lag: r.Lag, oor: r.OutOfRange}
	if r.Committed != nil {
		s.committed = *r.Committed
	}
	return s
}

// sampleRun is n equal samples in a row.
type sampleRun struct {
	s sample
	n int32
}

// samples are a module partition's last samples, at most a window of them, as
// runs of equal ones: a partition nothing happens to costs one run.
type samples struct {
	runs  []sampleRun // oldest first
	count int32       // samples in runs
}

// add appends s and drops the oldest samples beyond window.
func (ss *samples) add(s sample, window int) {
	if n := len(ss.runs); n > 0 && ss.runs[n-1].s == s {
		ss.runs[n-1].n++
	} else {
		ss.runs = append(ss.runs, sampleRun{s: s, n: 1})
	}
	ss.count++
	for ss.count > int32(window) {
		ss.runs[0].n--
		ss.count--
		if ss.runs[0].n == 0 {
			ss.runs = ss.runs[1:]
		}
	}
}

// evaluate judges the samples, oldest first, against a window of window
// samples. Rules in order of precedence:
//   - OUT_OF_RANGE: the last sample's committed offset was out of range; it
//     needs no full window, as records are being lost.
//   - REWIND: some committed offset is below the one before it.
//   - STOP (full window only): no sample has an owner, or none has a commit.
//   - STALL (full window only): every sample has lag > 0 and the same committed
//     offset.
//   - WARN (full window only): the committed offset moved, every sample has lag
//     > 0, lag never fell from one sample to the next and ended above where it
//     started.
//   - OK otherwise (lag reached 0, or fell, or the window is not full yet).
//
// Within a run the samples are equal, so comparing neighbours means comparing
// neighbouring runs.
func (ss *samples) evaluate(window int) Status {
	runs := ss.runs
	if len(runs) == 0 {
		return StatusOK
	}
	if runs[len(runs)-1].s.oor {
		return StatusOutOfRange
	}
	for i := 1; i < len(runs); i++ {
		a, b := runs[i-1].s, runs[i].s
		if a.hasCommit && b.hasCommit && b.committed < a.committed {
			return StatusRewind
		}
	}
	if int(ss.count) < window || window < 2 {
		return StatusOK
	}
	owned, committed := false, false
	for _, r := range runs {
		owned = owned || r.s.hasOwner
		committed = committed || r.s.hasCommit
	}
	if !owned || !committed {
		return StatusStop
	}
	first, last := runs[0].s, runs[len(runs)-1].s
	for _, r := range runs {
		if !r.s.hasCommit || r.s.lag == 0 {
			return StatusOK
		}
	}
	if first.committed == last.committed {
		return StatusStall
	}
	for i := 1; i < len(runs); i++ {
		if runs[i].s.lag < runs[i-1].s.lag {
			return StatusOK
		}
	}
	if last.lag > first.lag {
		return StatusWarn
	}
	return StatusOK
}
