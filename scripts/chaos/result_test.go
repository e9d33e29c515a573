package chaos

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

type keySeq struct {
	key string
	seq int
}

// partOffset is a record's place: the topic's generation (offsets start again
// at 0 in a recreated topic), partition and offset.
type partOffset struct {
	gen       int32
	partition int32
	offset    int64
}

// result is what a chaos run saw, and the checks on it.
type result struct {
	store      store
	start      time.Time
	loadTime   time.Duration
	drainTime  time.Duration
	faults     []faultRecord
	wantFaults int // the faults of a round of the variant's schedule

	acks     []ack
	attempts int
	failures map[string]int
	gen      int32 // the topic's generation now: the one logStart and logEnd are of

	deliveries []delivery
	bad        []string
	backend    backendCounts

	logStart, logEnd, committed map[int32]int64
	monitor                     map[int32]string // kmonitor's /lag row of each partition
	delay                       map[string]int64 // kmonitor's /delay of the module

	waiting []string // why the pipeline has not caught up yet

	// From analyse.
	firstAt     map[keySeq]time.Time
	delivered   map[partOffset]int
	orderErrors []string
}

type backendCounts struct {
	requests, failed, dropped, stalled, slow int64
}

// analyse indexes the deliveries and checks the order of each key's first
// deliveries: a key's sequence numbers must first arrive in increasing order.
func (r *result) analyse() {
	r.firstAt = make(map[keySeq]time.Time, len(r.deliveries))
	r.delivered = make(map[partOffset]int, len(r.deliveries))
	r.orderErrors = nil
	highest := map[string]int{}
	for _, d := range r.deliveries {
		r.delivered[partOffset{d.gen, d.partition, d.offset}]++
		ks := keySeq{d.key, d.seq}
		if _, seen := r.firstAt[ks]; seen {
			continue
		}
		r.firstAt[ks] = d.at
		if h, ok := highest[d.key]; ok && d.seq < h && len(r.orderErrors) < 20 {
			r.orderErrors = append(r.orderErrors, fmt.Sprintf("key %s: seq %d first delivered after seq %d", d.key, d.seq, h))
		}
		highest[d.key] = max(highest[d.key], d.seq)
	}
}

// pending lists what keeps the run from being complete.
func (r *result) pending() []string {
	return append(r.pendingDelivery(), r.pendingMonitor()...)
}

// pendingDelivery lists the acknowledged records not delivered, the records
// of the topic not delivered and the committed offsets not at the log end.
func (r *result) pendingDelivery() []string {
	var out []string
	var missing int
	for _, a := range r.acks {
		if _, ok := r.firstAt[keySeq{a.key, a.seq}]; !ok {
			if missing < 5 {
				out = append(out, fmt.Sprintf("acknowledged record %s seq %d (topic generation %d, partition %d offset %d) not delivered", a.key, a.seq, a.gen, a.partition, a.offset))
			}
			missing++
		}
	}
	if missing > 5 {
		out = append(out, fmt.Sprintf("... %d acknowledged records not delivered in all", missing))
	}
	for p := int32(0); p < partitions; p++ {
		var undelivered int64
		for o := r.logStart[p]; o < r.logEnd[p]; o++ {
			if r.delivered[partOffset{r.gen, p, o}] == 0 {
				undelivered++
			}
		}
		if undelivered > 0 {
			out = append(out, fmt.Sprintf("partition %d: %d records of offsets %d..%d not delivered", p, undelivered, r.logStart[p], r.logEnd[p]-1))
		}
		if c, ok := r.committed[p]; ok && c != r.logEnd[p] {
			out = append(out, fmt.Sprintf("partition %d: committed offset %d, log end %d", p, c, r.logEnd[p]))
		}
	}
	return out
}

// pendingMonitor lists the partitions kmonitor does not show at lag 0 and OK.
func (r *result) pendingMonitor() []string {
	var out []string
	for p := int32(0); p < partitions; p++ {
		row, ok := r.monitor[p]
		if want := fmt.Sprintf("lag 0 committed %d status OK stale false", r.logEnd[p]); !ok || row != want {
			out = append(out, fmt.Sprintf("partition %d: kmonitor /lag %q, want %q", p, row, want))
		}
		if lag, ok := r.delay[fmt.Sprint(p)]; !ok || lag != 0 {
			out = append(out, fmt.Sprintf("partition %d: kmonitor /delay lag %d (present %t), want 0", p, lag, ok))
		}
	}
	return out
}

// faultDuplicateBound is the most re-deliveries a fault may cause (counted
// from it to the next fault), and the run before its first fault: at most a
// window of each partition.
const faultDuplicateBound = partitions * windowSize

// duplicateBound is the most re-deliveries the run may cause: a window of
// each partition per fault and before the first.
func (r *result) duplicateBound() int { return (len(r.faults) + 1) * faultDuplicateBound }

func (r *result) distinctDelivered() int { return len(r.delivered) }

// inKafka counts the records written to Kafka: those in the topic now and
// those of the topics deleted by a recreation.
func (r *result) inKafka() int64 {
	var n int64
	for p, end := range r.logEnd {
		n += end - r.logStart[p]
	}
	for _, f := range r.faults {
		if f.recreated != nil {
			n += f.recreated.oldRecords
		}
	}
	return n
}

// recovery returns, for a fault, how long after its repair every partition
// delivered a record that kproxy acknowledged after the repair; ok is false when
// some partition never did.
func (r *result) recovery(f faultRecord) (time.Duration, bool) {
	firstFresh := map[int32]time.Time{}
	for _, a := range r.acks {
		if a.at.Before(f.repaired) {
			continue
		}
		at, ok := r.firstAt[keySeq{a.key, a.seq}]
		if !ok {
			continue
		}
		if cur, seen := firstFresh[a.partition]; !seen || at.Before(cur) {
			firstFresh[a.partition] = at
		}
	}
	var worst time.Duration
	for p := int32(0); p < partitions; p++ {
		at, ok := firstFresh[p]
		if !ok {
			return 0, false
		}
		worst = max(worst, at.Sub(f.repaired))
	}
	return worst, true
}

// duplicatesByFault counts the repeated deliveries of a record between each
// fault and the next, and those before the first fault.
func (r *result) duplicatesByFault() (perFault []int, before int) {
	perFault = make([]int, len(r.faults))
	seen := make(map[partOffset]bool, len(r.deliveries))
	for _, d := range r.deliveries {
		po := partOffset{d.gen, d.partition, d.offset}
		if !seen[po] {
			seen[po] = true
			continue
		}
		i := sort.Search(len(r.faults), func(i int) bool { return r.faults[i].injected.After(d.at) }) - 1
		if i < 0 {
			before++
		} else {
			perFault[i]++
		}
	}
	return perFault, before
}

// longestStall is the longest time between two consecutive first deliveries
// while the load ran or records were still pending, and when it began.
func (r *result) longestStall() (time.Duration, time.Time) {
	times := make([]time.Time, 0, len(r.firstAt))
	for _, at := range r.firstAt {
		times = append(times, at)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var worst time.Duration
	var at time.Time
	prev := r.start
	for _, t := range times {
		if gap := t.Sub(prev); gap > worst {
			worst, at = gap, prev
		}
		prev = t
	}
	return worst, at
}

// longestCommitGap is the longest time between two consecutive 200s from
// kproxy during the load, and when it began.
func (r *result) longestCommitGap() (time.Duration, time.Time) {
	var worst time.Duration
	var at time.Time
	prev := r.start
	for _, a := range r.acks { // in acknowledgement order, near enough
		if gap := a.at.Sub(prev); gap > worst {
			worst, at = gap, prev
		}
		prev = a.at
	}
	return worst, at
}

// latencies returns the time from kproxy's 200 to the first delivery, sorted.
func (r *result) latencies() []time.Duration {
	out := make([]time.Duration, 0, len(r.acks))
	for _, a := range r.acks {
		if at, ok := r.firstAt[keySeq{a.key, a.seq}]; ok {
			out = append(out, max(0, at.Sub(a.at)))
		}
	}
	slices.Sort(out)
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// report prints the summary of the run.
func (r *result) report(w io.Writer) {
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	var fails []string
	for k, n := range r.failures {
		fails = append(fails, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(fails)
	keys := map[string]bool{}
	for _, a := range r.acks {
		keys[a.key] = true
	}
	fmt.Fprintf(w, "\n==== chaos run summary: offset store %s ====\n", r.store)
	fmt.Fprintf(w, "load phase %s, drain after it %s, %d faults\n", ms(r.loadTime), ms(r.drainTime), len(r.faults))
	if len(fails) == 0 {
		fails = []string{"none"}
	}
	fmt.Fprintf(w, "records committed (kproxy 200):   %d of %d attempts (acks=1: %d, acks=-1: %d), %d keys; failed attempts: %s\n",
		len(r.acks), r.attempts, byAcks(r.acks, "1"), byAcks(r.acks, "-1"), len(keys), strings.Join(fails, ", "))
	fmt.Fprintf(w, "records written to Kafka:         %d (%d more than committed: written but not answered 200, e.g. timed out)\n",
		r.inKafka(), r.inKafka()-int64(len(r.acks)))
	fmt.Fprintf(w, "records delivered:                %d distinct, %d deliveries, %d duplicates (bound %d)\n",
		r.distinctDelivered(), len(r.deliveries), len(r.deliveries)-r.distinctDelivered(), r.duplicateBound())
	fmt.Fprintf(w, "committed records not delivered:  %d\n", r.undeliveredAcks())
	fmt.Fprintf(w, "per-key order violations:         %d\n", len(r.orderErrors))
	fmt.Fprintf(w, "backend:                          %d requests: %d answered 500, %d connections dropped, %d stalled past the timeout, %d slow\n",
		r.backend.requests, r.backend.failed, r.backend.dropped, r.backend.stalled, r.backend.slow)
	lat := r.latencies()
	fmt.Fprintf(w, "200 → first delivery:             p50 %s, p99 %s, max %s\n", ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99)), ms(quantile(lat, 1)))
	stall, at := r.longestStall()
	fmt.Fprintf(w, "longest stall (no new delivery):  %s, from +%s\n", ms(stall), ms(at.Sub(r.start)))
	gap, gapAt := r.longestCommitGap()
	fmt.Fprintf(w, "longest time without a 200:       %s, from +%s\n", ms(gap), ms(gapAt.Sub(r.start)))
	dups, early := r.duplicatesByFault()
	fmt.Fprintf(w, "%-24s %10s %8s %10s %14s %12s\n", "fault", "at", "down", "recovery", "kmonitor lag¹", "duplicates²")
	for i, f := range r.faults {
		fmt.Fprintf(w, "%-24s %10s %8s %10s %14d %12d\n", f.name, "+"+ms(f.injected.Sub(r.start)), ms(f.repaired.Sub(f.injected)), r.recoveryText(f), f.monitorLag, dups[i])
	}
	fmt.Fprintf(w, "%-24s %10s %8s %10s %14s %12d\n", "(before the first fault)", "", "", "", "", early)
	fmt.Fprintf(w, "(recovery: from the repair — for a SIGKILL, the kill; for a topic recreation, the creation — until every partition delivered a record committed after it;\n"+
		" ¹ the module's lag in kmonitor's /delay just before the repair; for a topic recreation, the highest until ktransfer had left the old topic's offsets and pushed from the new topic's every partition;\n"+
		" ² repeated deliveries between this fault and the next, at most %d each)\n", faultDuplicateBound)
	fmt.Fprintf(w, "\n%-24s %7s %12s %14s %14s\n", "per fault type", "faults", "duplicates", "most per fault", "worst recovery")
	for _, k := range r.kinds() {
		var n, total, most int
		var worst time.Duration
		never := false
		for i, f := range r.faults {
			if f.kind != k {
				continue
			}
			n++
			total += dups[i]
			most = max(most, dups[i])
			if d, ok := r.recovery(f); ok {
				worst = max(worst, d)
			} else {
				never = true
			}
		}
		rec := ms(worst)
		if never {
			rec = "never"
		}
		fmt.Fprintf(w, "%-24s %7d %12d %14d %14s\n", k, n, total, most, rec)
	}
	for _, f := range r.faults {
		rc := f.recreated
		if rc == nil {
			continue
		}
		fmt.Fprintf(w, "\ntopic recreated at +%s: the load paused, the old topic's %d records were all delivered and committed %s later; deleted and created in %s\n",
			ms(f.injected.Sub(r.start)), rc.oldRecords, ms(rc.catchUp), ms(f.repaired.Sub(f.injected)))
		first := "no record of the new topic delivered"
		if at, ok := r.firstOfGen(rc.gen); ok {
			first = "first record of the new topic delivered after " + ms(at.Sub(f.repaired))
		}
		moved := "some committed offset still the old topic's after 45 s"
		if rc.moved >= 0 {
			moved = "every committed offset off the old topic's after " + ms(rc.moved)
		}
		fmt.Fprintf(w, "  %s, one of every partition after %s; %s\n", first, r.recoveryText(f), moved)
		fmt.Fprintf(w, "  kmonitor on a committed offset above the new log end, from its poll %d in a row finding it so: %s\n", judgedPoll, counts(rc.judged))
		fmt.Fprintf(w, "  kmonitor on it before that poll or stale (not judged): %s\n", counts(rc.early))
		if len(rc.noCommit) > 0 {
			fmt.Fprintf(w, "  kmonitor on a partition without a commit (the old topic's dropped, none in the new one yet): %s\n", counts(rc.noCommit))
		}
	}
	fmt.Fprintln(w)
}

// recoveryText is recovery as the summary prints it.
func (r *result) recoveryText(f faultRecord) string {
	if d, ok := r.recovery(f); ok {
		return d.Round(time.Millisecond).String()
	}
	return "never"
}

// kinds lists the fault types of the run in the order they first came.
func (r *result) kinds() []string {
	var out []string
	for _, f := range r.faults {
		if !slices.Contains(out, f.kind) {
			out = append(out, f.kind)
		}
	}
	return out
}

// firstOfGen returns when the backend first answered 200 for a record of the
// topic's generation gen.
func (r *result) firstOfGen(gen int32) (time.Time, bool) {
	var first time.Time
	for _, d := range r.deliveries {
		if d.gen == gen && (first.IsZero() || d.at.Before(first)) {
			first = d.at
		}
	}
	return first, !first.IsZero()
}

func (r *result) undeliveredAcks() int {
	n := 0
	for _, a := range r.acks {
		if _, ok := r.firstAt[keySeq{a.key, a.seq}]; !ok {
			n++
		}
	}
	return n
}

// check fails t for every broken promise; the pipeline catching up at all was
// checked by drain.
func (r *result) check(t *testing.T) {
	t.Helper()
	if len(r.bad) > 0 {
		t.Errorf("%d requests did not match their record, e.g. %s", len(r.bad), r.bad[0])
	}
	if n := r.failures["bad 200 body"]; n > 0 {
		t.Errorf("kproxy answered 200 with an unreadable body %d times", n)
	}
	for _, e := range r.orderErrors {
		t.Errorf("per-key order: %s", e)
	}
	if n := r.undeliveredAcks(); n > 0 {
		t.Errorf("%d records kproxy answered 200 for never reached the backend", n)
	}
	dups, early := r.duplicatesByFault()
	for i, f := range r.faults {
		if dups[i] > faultDuplicateBound {
			t.Errorf("%s at +%s: got %d duplicate deliveries before the next fault, want at most %d (a window per partition)",
				f.name, f.injected.Sub(r.start).Round(time.Millisecond), dups[i], faultDuplicateBound)
		}
	}
	if early > faultDuplicateBound {
		t.Errorf("before the first fault: got %d duplicate deliveries, want at most %d", early, faultDuplicateBound)
	}
	// A key's acknowledged sequence numbers are 0, 1, 2, ... by construction of
	// the load; anything else means the check above saw a broken load.
	next := map[string]int{}
	for _, a := range r.acks {
		if a.seq != next[a.key] {
			t.Fatalf("load: key %s acknowledged seq %d, want %d", a.key, a.seq, next[a.key])
		}
		next[a.key]++
	}
	// The run must have been a real one: load flowing, every fault injected
	// and recovered from, the backend misbehaving in every way.
	if len(r.acks) < 1000 {
		t.Errorf("only %d records committed: the run proves little", len(r.acks))
	}
	if len(r.faults) < r.wantFaults {
		t.Errorf("only %d faults injected, want at least %d (a round)", len(r.faults), r.wantFaults)
	}
	for _, f := range r.faults {
		rc := f.recreated
		if rc == nil {
			continue
		}
		at := f.injected.Sub(r.start).Round(time.Millisecond)
		for _, w := range rc.wrong[:min(len(rc.wrong), 5)] {
			t.Errorf("topic recreated at +%s: kmonitor reported a committed offset above the log end as caught up: %s", at, w)
		}
		if len(rc.wrong) > 5 {
			t.Errorf("topic recreated at +%s: %d such rows of kmonitor in all", at, len(rc.wrong))
		}
		if rc.moved < 0 {
			t.Errorf("topic recreated at +%s: ktransfer's committed offsets stayed on the old topic's for 45 s", at)
		}
		if _, ok := r.firstOfGen(rc.gen); !ok {
			t.Errorf("topic recreated at +%s: no record of the new topic delivered", at)
		}
	}
	for _, f := range r.faults {
		if _, ok := r.recovery(f); !ok {
			t.Errorf("%s at +%s: some partition never delivered a record committed after it", f.name, f.injected.Sub(r.start).Round(time.Millisecond))
		}
	}
	for _, f := range r.faults {
		if f.outage && f.monitorLag <= 0 {
			t.Errorf("%s at +%s: kmonitor reported lag %d while nothing was delivered", f.name, f.injected.Sub(r.start).Round(time.Millisecond), f.monitorLag)
		}
	}
	if min(byAcks(r.acks, "1"), byAcks(r.acks, "-1")) == 0 {
		t.Errorf("acks levels: want records committed with both acks=1 and acks=-1")
	}
	if r.backend.failed == 0 || r.backend.dropped == 0 || r.backend.stalled == 0 {
		t.Errorf("backend faults: %+v, want some of each kind", r.backend)
	}
}

func byAcks(acks []ack, level string) int {
	n := 0
	for _, a := range acks {
		if a.acks == level {
			n++
		}
	}
	return n
}
