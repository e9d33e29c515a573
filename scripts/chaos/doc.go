// Package chaos holds the end-to-end chaos run of the whole pipeline, as tests:
// a load generator commits records through a real kproxy process, three real
// ktransfer processes push them to a backend that misbehaves on purpose, and a
// real kmonitor watches, while faults are injected on a schedule (SIGKILL of a
// ktransfer process, a dev broker restart with its data kept, a ZooKeeper
// restart, the topic deleted and created again under the running fleet, a
// backend outage). At the end the run proves that nothing kproxy acknowledged
// was lost and prints a summary.
//
// `make test` runs the short variant (about two minutes); `make soak
// DURATION=30m` runs the long one:
//
//	go test -run TestChaos -v ./scripts/chaos -duration 30m
package chaos
