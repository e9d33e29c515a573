package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/commitmeta"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// MigrateOptions select what MigrateOffsets does.
type MigrateOptions struct {
	// Modules are the modules to migrate, each one of module_enabled; empty
	// means every enabled module.
	Modules []string
	// DryRun reads both stores and reports what would be done, changing
	// nothing.
	DryRun bool
}

// Migration actions, the ACTION column of the table.
const (
	ActionCopy      = "copied"    // the group had no offset: the ZooKeeper one was committed
	ActionOverwrite = "replaced"  // the group had an older other offset: replaced by ZooKeeper's
	ActionUnchanged = "unchanged" // the group holds the ZooKeeper offset already
	ActionKept      = "kept"      // the group's offset (if any) kept: none in ZooKeeper, or the group's is newer
	ActionBadZK     = "skipped"   // the ZooKeeper node does not hold an offset: nothing done
)

// MigrationRow is one partition of a migration.
type MigrationRow struct {
	Module    string
	Topic     string
	Partition int32
	// ZooKeeper is the offset node's offset, -1 when there is none.
	ZooKeeper int64
	// KafkaBefore and KafkaAfter are the group's committed offset before and
	// after the migration, -1 when there is none.
	KafkaBefore int64
	KafkaAfter  int64
	// Action is one of the Action constants; Note says why, when needed.
	Action string
	Note   string
}

// MigrateOffsets copies the ZooKeeper offsets of cfg's modules
// ({zk_chroot}/consumers/{module}/offsets/{topic}/{partition}) into the
// modules' Kafka consumer groups, so that a fleet stopped under offset_store
// zookeeper starts under offset_store kafka where it stopped. It refuses a
// module (and changes nothing for it) while its fleet runs: while ZooKeeper
// holds a live instance of it (an ephemeral ids node) or its Kafka group has
// members. A partition whose offset in the group was committed after the
// ZooKeeper one was written (the fleet ran on Kafka since) keeps it. With
// DryRun, nothing is written. The rows say what was (or would be) done for
// every partition; the error joins every module's refusal or failure.
func MigrateOffsets(ctx context.Context, cfg Config, opts MigrateOptions, log *slog.Logger) ([]MigrationRow, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mods, err := selectModules(cfg, opts.Modules)
	if err != nil {
		return nil, err
	}
	if len(cfg.ZKHosts) == 0 {
		return nil, errors.New("migrate-offsets reads the offsets in ZooKeeper: zk_hosts is empty")
	}
	sess, err := fleet.Connect(cfg.ZKHosts, time.Duration(cfg.ZKTimeoutMs)*time.Millisecond, time.Duration(cfg.ZKFailRetryIntervalMs)*time.Millisecond, log)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Duration(cfg.ZKTimeoutMs)*time.Millisecond+5*time.Second)
	err = sess.WaitConnected(wctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect to ZooKeeper %v: %w", cfg.ZKHosts, err)
	}
	brokers := cfg.BrokerHosts
	if len(brokers) == 0 {
		if brokers, err = kafkaconn.ReadBrokers(sess.Conn(), cfg.ZKChroot); err != nil {
			return nil, fmt.Errorf("discover brokers: %w", err)
		}
	}
	base, err := kafkaconn.Options(brokers, cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	mg := migrator{conn: sess.Conn(), layout: zkconsumers.New(cfg.ZKChroot), adm: kadm.NewClient(cl), dry: opts.DryRun, log: log}
	var rows []MigrationRow
	var errs []error
	for _, m := range mods {
		r, err := mg.module(ctx, m)
		rows = append(rows, r...)
		if err != nil {
			errs = append(errs, fmt.Errorf("module %s: %w", m.Name, err))
		}
	}
	return rows, errors.Join(errs...)
}

// selectModules returns the enabled modules named by names (all when empty).
func selectModules(cfg Config, names []string) ([]Module, error) {
	if len(names) == 0 {
		return cfg.Modules, nil
	}
	var out []Module
	var errs []error
	for _, n := range names {
		i := slices.IndexFunc(cfg.Modules, func(m Module) bool { return m.Name == n })
		if i < 0 {
			errs = append(errs, fmt.Errorf("--module %q is not one of module_enabled (%s)", n, strings.Join(moduleNames(cfg.Modules), ", ")))
			continue
		}
		out = append(out, cfg.Modules[i])
	}
	return out, errors.Join(errs...)
}

func moduleNames(mods []Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

type migrator struct {
	conn   *zk.Conn
	layout zkconsumers.Layout
	adm    *kadm.Client
	dry    bool
	log    *slog.Logger
}

// zkOffset is one offset node.
type zkOffset struct {
	off     int64
	written time.Time
	err     error // the node does not hold an offset
}

func (mg migrator) module(ctx context.Context, m Module) ([]MigrationRow, error) {
	if live, err := mg.liveInstances(m.Name); err != nil {
		return nil, err
	} else if len(live) > 0 {
		return nil, fmt.Errorf("ktransfer processes still run it under offset_store zookeeper (live instances in %s: %s): stop them first", mg.layout.IDs(m.Name), strings.Join(live, ", "))
	}
	if members, err := mg.groupMembers(ctx, m.Name); err != nil {
		return nil, err
	} else if len(members) > 0 {
		return nil, fmt.Errorf("its Kafka consumer group has %d live members (%s): stop every ktransfer process of the module first", len(members), strings.Join(members, ", "))
	}
	zkOffs, err := mg.zkOffsets(m)
	if err != nil {
		return nil, err
	}
	kafkaOffs, err := mg.adm.FetchOffsets(ctx, m.Name)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, fmt.Errorf("read the offsets of Kafka group %s: %w", m.Name, err)
	}
	parts := map[int32]bool{}
	for p := range zkOffs {
		parts[p] = true
	}
	kafkaOffs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == m.Topic && o.Err == nil && o.At >= 0 {
			parts[o.Partition] = true
		}
	})
	var rows []MigrationRow
	commit := kadm.Offsets{}
	meta := commitmeta.Meta{Instance: migrateInstance(), Time: time.Now()}.Encode()
	for _, p := range sortedParts(parts) {
		row := MigrationRow{Module: m.Name, Topic: m.Topic, Partition: p, ZooKeeper: -1, KafkaBefore: -1}
		var kafkaMeta string
		if o, ok := kafkaOffs.Lookup(m.Topic, p); ok && o.Err == nil && o.At >= 0 {
			row.KafkaBefore, kafkaMeta = o.At, o.Metadata
		}
		row.KafkaAfter = row.KafkaBefore
		z, inZK := zkOffs[p]
		switch {
		case !inZK:
			row.Action, row.Note = ActionKept, "no offset in ZooKeeper"
		case z.err != nil:
			row.Action, row.Note = ActionBadZK, z.err.Error()
		default:
			row.ZooKeeper = z.off
			switch {
			case row.KafkaBefore == z.off:
				row.Action = ActionUnchanged
			case row.KafkaBefore < 0:
				row.Action, row.KafkaAfter = ActionCopy, z.off
			case newerCommit(kafkaMeta, z.written):
				row.Action, row.Note = ActionKept, "the group's offset was committed after ZooKeeper's was written"
			default:
				row.Action, row.KafkaAfter = ActionOverwrite, z.off
			}
			if row.KafkaAfter != row.KafkaBefore {
				commit.Add(kadm.Offset{Topic: m.Topic, Partition: p, At: z.off, LeaderEpoch: -1, Metadata: meta})
			}
		}
		rows = append(rows, row)
	}
	if mg.dry || len(commit) == 0 {
		return rows, nil
	}
	// An administrator's commit (no member, generation -1): Kafka accepts it
	// only while the group has no member, so a process that joined since the
	// check makes it fail rather than race.
	resps, err := mg.adm.CommitOffsets(ctx, m.Name, commit)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		for i := range rows {
			rows[i].KafkaAfter = rows[i].KafkaBefore
			if rows[i].Action == ActionCopy || rows[i].Action == ActionOverwrite {
				rows[i].Action, rows[i].Note = "failed", err.Error()
			}
		}
		return rows, fmt.Errorf("commit to Kafka group %s: %w", m.Name, err)
	}
	mg.log.Info("offsets copied from ZooKeeper to the Kafka group", "module", m.Name, "partitions", len(commit[m.Topic]))
	return rows, nil
}

// liveInstances lists the module's instances registered in ZooKeeper by a
// live session (ephemeral ids nodes).
func (mg migrator) liveInstances(group string) ([]string, error) {
	dir := mg.layout.IDs(group)
	ids, _, err := mg.conn.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var live []string
	for _, id := range ids {
		ok, st, err := mg.conn.Exists(dir + "/" + id)
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", dir, id, err)
		}
		if ok && st.EphemeralOwner != 0 {
			live = append(live, id)
		}
	}
	sort.Strings(live)
	return live, nil
}

// groupMembers lists the members of the Kafka group, under either protocol.
func (mg migrator) groupMembers(ctx context.Context, group string) ([]string, error) {
	var out []string
	classic, err := mg.adm.DescribeGroups(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, fmt.Errorf("describe Kafka group %s: %w", group, err)
	}
	for _, m := range classic[group].Members {
		out = append(out, m.ClientID+" ("+m.ClientHost+")")
	}
	consumer, err := mg.adm.DescribeConsumerGroups(ctx, group)
	if err != nil && mg.offersConsumerProtocol(ctx) {
		return nil, fmt.Errorf("describe Kafka consumer group %s: %w", group, err)
	}
	// A group of the classic protocol is not found by this describe.
	for _, m := range consumer[group].Members {
		out = append(out, m.ClientID+" ("+m.ClientHost+")")
	}
	return out, nil
}

// offersConsumerProtocol tells whether a broker describes consumer-protocol
// groups (ConsumerGroupDescribe): without, no group runs that protocol. In
// doubt, it says yes.
func (mg migrator) offersConsumerProtocol(ctx context.Context) bool {
	vs, err := mg.adm.ApiVersions(ctx)
	if err != nil {
		return true
	}
	for _, v := range vs {
		if _, ok := v.KeyMaxVersion(int16(kmsg.ConsumerGroupDescribe)); ok || v.Err != nil {
			return true
		}
	}
	return false
}

// zkOffsets reads the module's offset nodes of its topic.
func (mg migrator) zkOffsets(m Module) (map[int32]zkOffset, error) {
	dir := mg.layout.OffsetsTopic(m.Name, m.Topic)
	names, _, err := mg.conn.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := map[int32]zkOffset{}
	for _, name := range names {
		p, err := zkconsumers.ParsePartition(name)
		if err != nil {
			mg.log.Warn("not a partition's offset node: ignored", "path", dir+"/"+name)
			continue
		}
		data, st, err := mg.conn.Get(dir + "/" + name)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", dir, name, err)
		}
		off, err := zkconsumers.DecodeOffset(data)
		out[p] = zkOffset{off: off, written: time.UnixMilli(st.Mtime), err: err}
	}
	return out, nil
}

// newerCommit tells whether a Kafka commit with metadata meta (ktransfer's)
// was made after written.
func newerCommit(meta string, written time.Time) bool {
	m, err := commitmeta.Decode(meta)
	return err == nil && m.Time.After(written)
}

func migrateInstance() string {
	host, _ := os.Hostname()
	return "migrate-offsets@" + host
}

func sortedParts(m map[int32]bool) []int32 {
	out := make([]int32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// WriteMigrationTable prints rows as a table, one line per partition.
func WriteMigrationTable(w io.Writer, rows []MigrationRow, dryRun bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	after := "KAFKA_AFTER"
	if dryRun {
		after = "KAFKA_AFTER(DRY_RUN)"
	}
	fmt.Fprintf(tw, "MODULE\tTOPIC\tPARTITION\tZOOKEEPER\tKAFKA_BEFORE\t%s\tACTION\n", after)
	show := func(v int64) string {
		if v < 0 {
			return "-"
		}
		return strconv.FormatInt(v, 10)
	}
	for _, r := range rows {
		action := r.Action
		if dryRun && (action == ActionCopy || action == ActionOverwrite) {
			action = "would be " + action
		}
		if r.Note != "" {
			action += " (" + r.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Module, r.Topic, r.Partition, show(r.ZooKeeper), show(r.KafkaBefore), show(r.KafkaAfter), action)
	}
	return tw.Flush()
}
