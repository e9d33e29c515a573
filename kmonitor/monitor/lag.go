package monitor

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
// with, by confirmPolls polls in a row (see cluster.confirmOutOfRange): a log
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
