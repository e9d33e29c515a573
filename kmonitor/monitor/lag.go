package monitor

import (
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/committed"
)

// The rules of lag, out-of-range offsets and time lag: pure functions of what
// the source and the polls read, without I/O (lag_test.go tables them). The
// status rules are in status.go.

// position returns the offset a module resumes pushing a partition from, given
// its committed offset and the partition's log offsets, and whether the
// committed offset is out of range. The lag is then lo.end − pos.
//
//   - start ≤ committed ≤ end: in range; the module resumes at committed.
//   - committed < start: retention deleted records the module never pushed.
//     ktransfer resumes at the log start (with a warning), so the lag counts from
//     there: the deleted records are lost, not waiting. Out of range.
//   - committed > end and confirmed: the log ends below the committed offset
//     (the topic was recreated, or an unclean leader election truncated the
//     log). Nothing of the log was pushed; ktransfer's offset_reset: oldest (its
//     default) pushes the whole log from the start, so the lag is end − start.
//     Out of range.
//   - committed > end, not confirmed: the commit is newer than the last read of
//     the log end, which only means the log grew since; the module is caught up
//     (lag 0).
//
// confirmed says the committed offset was read before the log end it is compared
// with, by confirmPolls polls in a row (see confirmAboveEnd): a log
// end read later can only be lower than a committed offset if the log really is
// shorter (or, for a moment, a new leader's high watermark lags).
func position(committed int64, lo logOffsets, confirmed bool) (pos int64, oor bool) {
	switch {
	case committed < lo.start:
		return lo.start, true
	case committed > lo.end && confirmed:
		return lo.start, true
	case committed > lo.end:
		return lo.end, false
	}
	return committed, false
}

// aboveEnd is a committed offset found above the log end by polls in a row.
type aboveEnd struct {
	offset int64
	polls  int
}

// confirmPolls is the number of polls in a row that must find a committed
// offset above the log end before it counts as out of range: for a moment after
// a leader change the new leader's high watermark can lag behind the old one's,
// and one such read must not report a whole log of lag.
const confirmPolls = 2

// confirmed reports whether a confirms committed offset off out of range.
func (a aboveEnd) confirmed(off int64) bool { return a.offset == off && a.polls >= confirmPolls }

// confirmAboveEnd returns the notes of committed offsets above the log end
// after a poll, given prev, the notes of the poll before; before and after, the
// committed offsets read before and after the log offsets; and logs, the log
// offsets (fresh: read by this poll). A committed offset lies above the log end
// for sure when it was read before that log end and has not changed since;
// found so by confirmPolls polls in a row it is out of range (see position). A
// partition whose log offsets could not be read keeps its note while its
// committed offset stays.
func confirmAboveEnd(prev map[committed.Key]aboveEnd, before, after map[committed.Key]committed.Part, logs map[topicPart]logEntry) map[committed.Key]aboveEnd {
	next := map[committed.Key]aboveEnd{}
	for k, p := range after {
		if !p.HasCommit {
			continue
		}
		e, ok := logs[topicPart{k.Topic, k.Partition}]
		switch {
		case !ok:
		case !e.fresh:
			if a, noted := prev[k]; noted && a.offset == p.Offset {
				next[k] = a
			}
		default:
			if b, ok := before[k]; ok && b.HasCommit && b.Offset == p.Offset && p.Offset > e.end {
				a := aboveEnd{offset: p.Offset, polls: 1}
				if last := prev[k]; last.offset == p.Offset {
					a.polls = min(last.polls+1, confirmPolls)
				}
				next[k] = a
			}
		}
	}
	return next
}

// timeLag returns the time lag of a partition with lag at now: the age of the
// record at its position, never negative, when its timestamp ts was read, else
// last, the time lag of the last poll.
func timeLag(now, ts time.Time, read bool, last float64) float64 {
	if !read {
		return last
	}
	return max(0, now.Sub(ts).Seconds())
}
