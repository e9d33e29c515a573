// Package kafkagroups is kmonitor's Kafka offset source: the committed
// offsets, owners and topics of the consumer groups a Kafka cluster keeps
// itself (ktransfer's offset_store: kafka, and any Kafka consumer), for a
// cluster without ZooKeeper. A Source is a committed.Poller: Kafka has no
// watches, so the core polls it at the start of each of its polls.
//
// One poll sends, whatever the number of groups:
//   - one ListGroups to every broker (the names, types and states of the
//     groups each coordinates); the cluster's committed.Filter chooses among
//     them (groups.allow, groups.deny, max_groups);
//   - one OffsetFetch per group coordinator, naming every chosen group at
//     once (version 8 and later; kadm.FetchManyOffsets through franz-go's
//     sharder, which falls back to one request per group on older brokers),
//     for the committed offsets and their metadata;
//   - for the groups that have members (ListGroups says a group is Empty
//     otherwise, and an empty group needs no describing), one DescribeGroups
//     (classic protocol) and one ConsumerGroupDescribe (KIP-848's consumer
//     protocol) per coordinator, naming all of them: each partition's owner is
//     the member it is assigned to;
//   - a Metadata request when an assignment names a topic by an id not seen
//     before.
//
// The owner of a partition is the member holding it, named
// INSTANCE@HOST: its group.instance.id, else its client id (ktransfer's
// instance_id), else its member id, and the host Kafka saw it connect from.
// A group without members has no owners: its partitions turn STOP. While a
// classic group rebalances (no assignment yet), the owners stay those of
// before.
//
// The time of a commit comes from its metadata where it is ktransfer's
// ({"instance":...,"time":...}, which also names the committing instance);
// other metadata is opaque, and the time is then when the source saw the
// offset change (unknown for an offset it found at its first read of the
// group).
//
// Errors never end the source: a broker that does not answer leaves the
// groups it coordinates as they were read last, Err says why until a poll
// reads everything again, and a group is dropped only when a listing that
// every broker answered no longer names it.
package kafkagroups

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/committed"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/commitmeta"
)

// Config is what a Source reads and how.
type Config struct {
	// Opts are the options of the Kafka client the source creates (seed
	// brokers, TLS, SASL, client id).
	Opts []kgo.Opt
	// Filter chooses the groups followed; it must not be nil.
	Filter *committed.Filter
	// Report, when set, is told what Filter decided at every poll, from the
	// polling goroutine.
	Report func(committed.Admission)
}

// Source keeps a committed.State in step with the consumer groups of one
// Kafka cluster, read at every Poll. Its methods are safe for concurrent use;
// polls run one at a time.
type Source struct {
	cl     *kgo.Client
	adm    *kadm.Client
	state  *committed.State
	filter *committed.Filter
	report func(committed.Admission)
	log    *slog.Logger
	now    func() time.Time

	closeOnce sync.Once

	errMu sync.Mutex
	err   error // why the last poll read less than everything; nil after a complete one

	// pollMu is held by Poll; it guards the fields below.
	pollMu   sync.Mutex
	groups   map[string]*group
	topicIDs map[[16]byte]string // topic names by id, for KIP-848 assignments
	lastErr  string              // the last error logged
}

var _ committed.Poller = (*Source)(nil)

// errNotRead is Err before the first poll.
var errNotRead = errors.New("the consumer groups have not been read from Kafka yet")

// New returns a Source of cfg. Its client connects when the first poll
// needs it.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	if cfg.Filter == nil {
		return nil, errors.New("kafkagroups: no group filter")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Report == nil {
		cfg.Report = func(committed.Admission) {}
	}
	cl, err := kgo.NewClient(cfg.Opts...)
	if err != nil {
		return nil, fmt.Errorf("create the Kafka client of the group source: %w", err)
	}
	return &Source{cl: cl, adm: kadm.NewClient(cl), state: committed.NewState(), filter: cfg.Filter,
		report: cfg.Report, log: log, now: time.Now, err: errNotRead,
		groups: map[string]*group{}, topicIDs: map[[16]byte]string{}}, nil
}

// Run waits until ctx ends, then closes the client: the reading is done by
// Poll, from the core's poll loop.
func (s *Source) Run(ctx context.Context) {
	<-ctx.Done()
	s.Close()
}

// Snapshot returns the current view (committed.Source).
func (s *Source) Snapshot() *committed.Snapshot { return s.state.Snapshot() }

// Version returns a number that changes with the view (committed.Source).
func (s *Source) Version() uint64 { return s.state.Version() }

// Added returns nil, a channel that never receives: what a poll finds, the
// same poll of the core reads the log offsets of (committed.Poller).
func (s *Source) Added() <-chan struct{} { return nil }

// Err returns nil when the last poll read every followed group, else why
// not; before the first poll it says so.
func (s *Source) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Close closes the client; safe to call twice.
func (s *Source) Close() { s.closeOnce.Do(s.cl.Close) }

// tp names a partition within a group.
type tp struct {
	topic     string
	partition int32
}

// group is what the source keeps of one followed group.
type group struct {
	parts  map[tp]*part
	topics map[string]bool // the group's topics as put in the state
	seen   bool            // its offsets were read once
	subs   []string        // topics its members subscribe to, from the last describe
}

// part is what the source keeps of one partition of a group; it is in the
// state while it has a commit or an owner.
type part struct {
	committed.Part
	meta string // the metadata of the commit
}

// setErr records the outcome of a poll and logs it when it changes.
func (s *Source) setErr(err error) {
	s.errMu.Lock()
	s.err = err
	s.errMu.Unlock()
	switch {
	case err != nil && err.Error() != s.lastErr:
		s.log.Warn("reading the consumer groups' offsets from Kafka failed; serving the last values marked stale", "err", err)
		s.lastErr = err.Error()
	case err == nil && s.lastErr != "":
		s.log.Info("reading the consumer groups' offsets from Kafka works again")
		s.lastErr = ""
	}
}

// Poll reads the groups once (committed.Poller).
func (s *Source) Poll(ctx context.Context) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	now := s.now()

	listed, complete, err := s.list(ctx)
	if listed == nil {
		s.setErr(err)
		return
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	keep := s.admit(listed, complete)
	keepSet := make(map[string]bool, len(keep))
	for _, g := range keep {
		keepSet[g] = true
	}
	for name, g := range s.groups {
		if !keepSet[name] {
			s.drop(name, g)
			delete(s.groups, name)
		}
	}
	if len(keep) == 0 {
		s.setErr(errors.Join(errs...))
		return
	}

	fetched := s.adm.FetchManyOffsets(ctx, keep...)
	desc, err := s.describe(ctx, keep, listed)
	if err != nil {
		errs = append(errs, err)
	}
	failed := 0
	var firstFailure error
	for _, name := range keep {
		g := s.groups[name]
		if g == nil {
			g = &group{parts: map[tp]*part{}, topics: map[string]bool{}}
			s.groups[name] = g
		}
		var offsets kadm.OffsetResponses
		switch f, ok := fetched[name]; {
		case !ok:
			failed++
			firstFailure = firstOf(firstFailure, fmt.Errorf("group %q: no answer to OffsetFetch", name))
		case errors.Is(f.Err, kerr.GroupIDNotFound):
			offsets = kadm.OffsetResponses{} // gone since the listing
		case f.Err != nil:
			failed++
			firstFailure = firstOf(firstFailure, fmt.Errorf("group %q: %w", name, f.Err))
		default:
			offsets = f.Fetched
		}
		s.apply(name, g, offsets, desc[name], now)
	}
	if failed > 0 {
		errs = append(errs, fmt.Errorf("read the committed offsets of %d of %d groups: %w", failed, len(keep), firstFailure))
	}
	s.setErr(errors.Join(errs...))
}

// firstOf returns first, or err when first is nil.
func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// admit returns the groups to follow among those listed: the filter's choice,
// plus, when some broker did not answer the listing, the followed groups it
// did not name (they may live on that broker).
func (s *Source) admit(listed map[string]listedGroup, complete bool) []string {
	names := make([]string, 0, len(listed))
	for n := range listed {
		names = append(names, n)
	}
	tracked := make(map[string]bool, len(s.groups))
	for n := range s.groups {
		tracked[n] = true
	}
	a := s.filter.Admit(names, tracked)
	if !complete {
		for n := range s.groups {
			if _, ok := listed[n]; !ok {
				a.Keep = append(a.Keep, n)
			}
		}
	}
	s.report(a)
	return a.Keep
}

// drop removes what group g put in the state.
func (s *Source) drop(name string, g *group) {
	for k, p := range g.parts {
		if p.HasCommit || p.Owner != "" {
			s.state.Update(committed.Key{Group: name, Topic: k.topic, Partition: k.partition}, func(sp *committed.Part) { *sp = committed.Part{} })
		}
	}
	for t := range g.topics {
		s.state.AddTopic(committed.GroupTopic{Group: name, Topic: t}, -1)
	}
}

// apply brings group name's view in line with what a poll read: its offsets
// (nil: not read, keep the last ones) and its description (nil: not read or
// rebalancing, keep the last owners and subscriptions). The state is only
// touched where something changed, so an idle group costs no new version.
func (s *Source) apply(name string, g *group, offsets kadm.OffsetResponses, d *described, now time.Time) {
	next := make(map[tp]committed.Part, len(g.parts))
	for k, p := range g.parts {
		np := p.Part
		if offsets != nil {
			np.Offset, np.HasCommit, np.CommitTime, np.CommittedBy = 0, false, time.Time{}, ""
		}
		if d != nil {
			np.Owner = ""
		}
		next[k] = np
	}
	metas := map[tp]string{}
	for topic, ps := range offsets {
		for pnum, o := range ps {
			k := tp{topic, pnum}
			old := g.parts[k]
			if o.Err != nil {
				// This partition's offset could not be read: keep the last.
				if old != nil {
					np := next[k]
					np.Offset, np.HasCommit, np.CommitTime, np.CommittedBy = old.Offset, old.HasCommit, old.CommitTime, old.CommittedBy
					next[k] = np
					metas[k] = old.meta
				}
				continue
			}
			if o.At < 0 {
				continue
			}
			np := next[k]
			np.Offset, np.HasCommit = o.At, true
			np.CommitTime, np.CommittedBy = commitTime(old, o.At, o.Metadata, g.seen, now)
			next[k] = np
			metas[k] = o.Metadata
		}
	}
	if d != nil {
		for k, owner := range d.owners {
			np := next[k]
			np.Owner = owner
			next[k] = np
		}
		g.subs = d.topics
	}
	if offsets != nil {
		g.seen = true
	}

	for k, np := range next {
		old := g.parts[k]
		var was committed.Part
		if old != nil {
			was = old.Part
		}
		if np != was {
			s.state.Update(committed.Key{Group: name, Topic: k.topic, Partition: k.partition}, func(sp *committed.Part) { *sp = np })
		}
		switch {
		case !np.HasCommit && np.Owner == "":
			delete(g.parts, k)
		case old == nil:
			g.parts[k] = &part{Part: np, meta: metas[k]}
		default:
			old.Part = np
			if offsets != nil {
				old.meta = metas[k]
			}
		}
	}

	// The group's topics: those it committed to, those assigned to its
	// members and those they subscribe to. Every partition of them is a row.
	topics := map[string]bool{}
	for k := range g.parts {
		topics[k.topic] = true
	}
	for _, t := range g.subs {
		topics[t] = true
	}
	for t := range g.topics {
		if !topics[t] {
			s.state.AddTopic(committed.GroupTopic{Group: name, Topic: t}, -1)
			delete(g.topics, t)
		}
	}
	for t := range topics {
		if !g.topics[t] {
			s.state.AddTopic(committed.GroupTopic{Group: name, Topic: t}, 1)
			g.topics[t] = true
		}
	}
}

// commitTime returns the time and committer of a commit at offset off with
// metadata meta, given the partition's last known state (nil: none): from
// ktransfer's metadata when it is that; else the last known time while
// neither offset nor metadata changed; else now, when the source saw the
// group before (the commit happened since its last poll), or zero, unknown,
// at the first read of the group.
func commitTime(old *part, off int64, meta string, seen bool, now time.Time) (time.Time, string) {
	if m, err := commitmeta.Decode(meta); err == nil {
		return m.Time, m.Instance
	}
	switch {
	case old != nil && old.HasCommit && old.Offset == off && old.meta == meta:
		return old.CommitTime, ""
	case seen:
		return now, ""
	}
	return time.Time{}, ""
}
