// Package chaos holds the end-to-end chaos run of the whole pipeline, as tests:
// a load generator commits records through a real kproxy process, three real
// ktransfer processes push them to a backend that misbehaves on purpose, and a
// real kmonitor watches, while faults are injected on a schedule (SIGKILL of a
// ktransfer process, a dev broker restart with its data kept, a ZooKeeper
// restart, the topic deleted and created again under the running fleet, a
// backend outage). At the end the run proves that nothing kproxy acknowledged
// was lost and prints a summary.
//
// The run has a variant per offset store, sharing everything else:
// TestChaos/zookeeper keeps the module's offsets in ZooKeeper (ktransfer's
// default offset_store, kmonitor's offset_source zookeeper), TestChaos/kafka in
// a Kafka consumer group (offset_store kafka, offset_source kafka) with no
// ZooKeeper process started at all, and so without the ZooKeeper restart.
//
// `make test` runs the short form of both (one round of faults each, about a
// minute and a half each); `make soak DURATION=30m [MODE=kafka]` the long one:
//
//	go test -run 'TestChaos/^kafka$' -v ./scripts/chaos -duration 30m
package chaos
