package monitor

import (
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/committed"
)

func TestPosition(t *testing.T) {
	lo := logOffsets{start: 100, end: 300}
	for _, tc := range []struct {
		name      string
		committed int64
		confirmed bool
		pos       int64
		oor       bool
	}{
		{"in range", 250, true, 250, false},
		{"at the log start", 100, true, 100, false},
		{"caught up", 300, true, 300, false},
		{"below the log start", 40, true, 100, true},
		{"below the log start, not confirmed", 40, false, 100, true},
		{"above the log end", 500, true, 100, true},
		{"above a log end read before the commit", 301, false, 300, false},
	} {
		pos, oor := position(tc.committed, lo, tc.confirmed)
		if pos != tc.pos || oor != tc.oor {
			t.Errorf("%s: position(%d) got %d %v, want %d %v", tc.name, tc.committed, pos, oor, tc.pos, tc.oor)
		}
	}
}

// TestConfirmAboveEnd: a committed offset above the log end counts as out of
// range only when read before that log end, unchanged, in confirmPolls polls in
// a row; a poll that cannot read the log keeps the note.
func TestConfirmAboveEnd(t *testing.T) {
	k := committed.Key{Group: "m", Topic: "t", Partition: 0}
	tp := topicPart{"t", 0}
	offsets := func(off int64) map[committed.Key]committed.Part {
		return map[committed.Key]committed.Part{k: {Offset: off, HasCommit: true}}
	}
	notes := map[committed.Key]aboveEnd{}
	steps := []struct {
		name          string
		before, after int64
		fresh         bool
		want          bool
	}{
		{"first poll above the end", 500, 500, true, false},
		{"second poll in a row", 500, 500, true, true},
		{"a poll without Kafka keeps it", 500, 500, false, true},
		{"a commit during the poll", 500, 0, true, false},
		{"above again", 500, 500, true, false},
		{"a commit past a log end read before it", 190, 250, true, false},
		{"the same commit seen before the next read", 250, 250, true, false},
		{"and once more", 250, 250, true, true},
	}
	for _, st := range steps {
		logs := map[topicPart]logEntry{tp: {logOffsets: logOffsets{0, 200}, fresh: st.fresh}}
		notes = confirmAboveEnd(notes, offsets(st.before), offsets(st.after), logs)
		if got := notes[k].confirmed(st.after); got != st.want {
			t.Errorf("%s: got confirmed %v, want %v (%+v)", st.name, got, st.want, notes[k])
		}
	}
	if got := confirmAboveEnd(notes, offsets(250), offsets(250), nil); len(got) != 0 {
		t.Errorf("log offsets never read: got notes %v, want none", got)
	}
	noCommit := map[committed.Key]committed.Part{k: {Owner: "h"}}
	if got := confirmAboveEnd(notes, noCommit, noCommit, map[topicPart]logEntry{tp: {fresh: true}}); len(got) != 0 {
		t.Errorf("no commit: got notes %v, want none", got)
	}
}

func TestTimeLagRule(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		ts   time.Time
		read bool
		last float64
		want float64
	}{
		{"record read", now.Add(-1500 * time.Millisecond), true, 9, 1.5},
		{"record stamped in the future", now.Add(time.Minute), true, 9, 0},
		{"record not read: the last poll's", time.Time{}, false, 9, 9},
	} {
		if got := timeLag(now, tc.ts, tc.read, tc.last); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRow: a row from what the source says of a partition and what the polls
// read of its log, for every combination that changes the answer.
func TestRow(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := now.Add(-time.Minute)
	k := committed.Key{Group: "m", Topic: "t", Partition: 0}
	tp := topicPart{"t", 0}
	commit := func(off int64) committed.Part {
		return committed.Part{Offset: off, HasCommit: true, CommitTime: at, Owner: "h"}
	}
	type want struct {
		lag        int64
		timeLag    float64
		stale, oor bool
		logs       bool // LogStart and LogEnd set
		committed  bool
	}
	for _, tc := range []struct {
		name   string
		part   committed.Part
		log    *logEntry
		above  bool // confirmed above the end
		ts     bool // the record at the position was read (2 s old)
		live   bool
		polled bool
		want   want
	}{
		{"in range", commit(40), &logEntry{logOffsets{10, 50}, true}, false, true, true, true, want{10, 2, false, false, true, true}},
		{"in range, timestamp not read: last poll's", commit(40), &logEntry{logOffsets{10, 50}, true}, false, false, true, true, want{10, 7, false, false, true, true}},
		{"caught up", commit(50), &logEntry{logOffsets{10, 50}, true}, false, true, true, true, want{0, 0, false, false, true, true}},
		{"below the log start", commit(4), &logEntry{logOffsets{10, 50}, true}, false, true, true, true, want{40, 2, false, true, true, true}},
		{"above the end, not confirmed", commit(60), &logEntry{logOffsets{10, 50}, true}, false, true, true, true, want{0, 0, false, false, true, true}},
		{"above the end, confirmed", commit(60), &logEntry{logOffsets{10, 50}, true}, true, true, true, true, want{40, 2, false, true, true, true}},
		{"no commit", committed.Part{Owner: "h"}, &logEntry{logOffsets{10, 50}, true}, false, true, true, true, want{0, 0, false, false, true, false}},
		{"log never read", commit(40), nil, false, true, true, true, want{0, 0, true, false, false, true}},
		{"log not read by the last poll", commit(40), &logEntry{logOffsets{10, 50}, false}, false, true, true, true, want{10, 2, true, false, true, true}},
		{"source unreachable", commit(40), &logEntry{logOffsets{10, 50}, true}, false, true, false, true, want{10, 2, true, false, true, true}},
		{"before the first poll", commit(40), &logEntry{logOffsets{10, 50}, true}, false, true, true, false, want{10, 2, true, false, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &cluster{name: "c", logs: map[topicPart]logEntry{}, judged: map[committed.Key]judged{k: {status: StatusWarn, timeLag: 7}},
				tsCache: map[tsKey]time.Time{}, aboveEnd: map[committed.Key]aboveEnd{}, polled: tc.polled}
			if tc.log != nil {
				c.logs[tp] = *tc.log
				pos, _ := position(tc.part.Offset, tc.log.logOffsets, tc.above)
				if tc.ts {
					c.tsCache[tsKey{tp, pos}] = now.Add(-2 * time.Second)
				}
			}
			if tc.above {
				c.aboveEnd[k] = aboveEnd{offset: tc.part.Offset, polls: confirmPolls}
			}
			r := c.rowLocked(k, tc.part, tc.live, now, &rowArena{})
			got := want{r.Lag, r.TimeLagSeconds, r.Stale, r.OutOfRange, r.LogStart != nil && r.LogEnd != nil, r.Committed != nil}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if r.Cluster != "c" || r.Module != "m" || r.Topic != "t" || r.Owner != tc.part.Owner || r.Status != StatusWarn || r.NoCommit != !tc.part.HasCommit {
				t.Errorf("got row %+v, want cluster c, module m, topic t, owner %q, status WARN, no_commit %v", r, tc.part.Owner, !tc.part.HasCommit)
			}
			if tc.part.HasCommit && (r.LastCommit == nil || !r.LastCommit.Equal(at) || *r.Committed != tc.part.Offset) {
				t.Errorf("got committed %v at %v, want %d at %v", r.Committed, r.LastCommit, tc.part.Offset, at)
			}
		})
	}
}
