package monitor

import "time"

// Point is one sample of a module's total lag.
type Point struct {
	// Time is when the sample was taken.
	Time time.Time `json:"t"`
	// Lag is the sum of the module's partitions' lag in records.
	Lag int64 `json:"lag"`
	// Seconds is the largest time lag of the module's partitions.
	Seconds float64 `json:"seconds"`
}

// View is what readers outside the core see of it — the dashboard (package
// web) reads a View; a Monitor is one. Its methods are safe for concurrent use.
type View interface {
	// History returns, per "cluster/module", the module's total lag samples of
	// the last d, oldest first (see Monitor.History).
	History(d time.Duration) map[string][]Point
	// Partitions returns the current rows, as /lag shows them, sorted by
	// cluster, module, topic and partition; callers must not modify them.
	Partitions() []PartitionLag
}

// PartitionLag is one module partition's row of /lag.
type PartitionLag struct {
	// Cluster is the cluster section's name.
	Cluster string `json:"cluster"`
	// Module is the consumer group.
	Module string `json:"module"`
	// Topic and Partition name the Kafka partition.
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the committed offset (the next record to push); nil when the
	// partition has no commit yet (NoCommit).
	Committed *int64 `json:"committed"`
	// NoCommit is true when the partition has no committed offset yet; its lag is
	// then reported as 0, not as the whole log.
	NoCommit bool `json:"no_commit"`
	// LogStart and LogEnd are the partition's log-start offset and high watermark
	// at the last poll; nil until Kafka has answered once.
	LogStart *int64 `json:"log_start"`
	LogEnd   *int64 `json:"log_end"`
	// Lag is LogEnd minus the committed offset, at least 0. Out of range (see
	// OutOfRange) it is LogEnd minus LogStart: the records a module resuming at
	// the log start has to push (records deleted by retention are not lag).
	Lag int64 `json:"lag"`
	// TimeLagSeconds is the age of the oldest record not yet pushed (now minus the
	// timestamp of the record at the committed offset); 0 when Lag is 0.
	TimeLagSeconds float64 `json:"time_lag_seconds"`
	// Owner is the instance id holding the partition; "" when none does.
	Owner string `json:"owner"`
	// LastCommit is when the offset node was last written; nil without a commit.
	LastCommit *time.Time `json:"last_commit"`
	// Stale is true when ZooKeeper is unreachable or the last poll could not read
	// this partition's log offsets from Kafka: the values are the last known ones.
	Stale bool `json:"stale"`
	// Status is the partition's status over the last status_window samples.
	Status Status `json:"status"`
	// OutOfRange is true when the committed offset lies outside the log: below
	// LogStart (retention deleted records never pushed), or above LogEnd as
	// confirmed by the last poll (the topic was recreated or its log truncated).
	OutOfRange bool `json:"out_of_range"`

	pos int64 // where pushing resumes: the record whose timestamp gives the time lag
}

var _ View = (*Monitor)(nil)
