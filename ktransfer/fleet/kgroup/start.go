package kgroup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/backoff"
)

// groupLogger is the group client's logger: the client's own, except that the
// warning it gives for every commit of a member that never polls (it keeps
// its book of committed offsets from the records it returned, and returns
// none here) goes to debug level.
type groupLogger struct{ kgo.Logger }

// Log passes msg on, the one warning at debug level.
func (l groupLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if level == kgo.LogLevelWarn && strings.HasPrefix(msg, "received an OffsetCommitResponse after our group session has ended") {
		level = kgo.LogLevelDebug
	}
	l.Logger.Log(level, msg, keyvals...)
}

// Group configuration keys of the consumer protocol (KIP-848), set per group.
const (
	configSessionTimeout    = "consumer.session.timeout.ms"
	configHeartbeatInterval = "consumer.heartbeat.interval.ms"
)

// start makes the group client, retrying while the brokers cannot be reached;
// it returns false when Close came first.
func (m *Member) start() bool {
	err := joinRetry.Retry(m.startCtx, m.tryStart, func(err error, wait time.Duration) {
		m.setErr(err)
		m.log.Warn("cannot join the consumer group yet; retrying", "err", err, "retry_in", wait)
	})
	if err != nil {
		return false
	}
	m.setErr(nil)
	return true
}

// joinRetry spaces the attempts to make the group client: from 500 ms,
// doubling to 10 s, until Close.
var joinRetry = backoff.Policy{Initial: 500 * time.Millisecond, Max: 10 * time.Second}

// tryStart chooses the protocol, sets the group's session timeout under the
// consumer protocol, and makes the group client.
func (m *Member) tryStart() error {
	ctx, cancel := context.WithTimeout(m.startCtx, 15*time.Second)
	defer cancel()
	protocol, session := m.cfg.Protocol, m.cfg.SessionTimeout
	if protocol != ProtocolClassic {
		probe, err := kgo.NewClient(m.base...)
		if err != nil {
			return err
		}
		defer probe.Close()
		if protocol == ProtocolAuto {
			if protocol, err = chooseProtocol(ctx, kadm.NewClient(probe)); err != nil {
				return fmt.Errorf("choose the group protocol: %w", err)
			}
		}
		if protocol == ProtocolConsumer {
			session = m.applyGroupSession(ctx, probe)
		}
	}
	heartbeat := min(3*time.Second, m.cfg.SessionTimeout/3)
	opts := append(slices.Clone(m.base),
		kgo.ConsumerGroup(m.cfg.Group),
		kgo.ConsumeTopics(m.cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(m.cfg.SessionTimeout),
		kgo.HeartbeatInterval(heartbeat),
		kgo.RebalanceTimeout(max(60*time.Second, m.cfg.ReleaseWait+15*time.Second)),
		kgo.OnPartitionsAssigned(m.onAssigned),
		kgo.OnPartitionsRevoked(m.onRevoked),
		kgo.OnPartitionsLost(m.onLost),
		kgo.WithHooks(hooks{m}),
		kgo.WithLogger(groupLogger{kslog.New(m.log.With("component", "kafka"))}),
	)
	if m.cfg.Instance != "" {
		opts = append(opts, kgo.ClientID(m.cfg.Instance))
	}
	if protocol == ProtocolConsumer {
		// kgo runs the consumer protocol with the sticky balancer first in
		// the list (the coordinator's "uniform" assignor).
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer())
	} else {
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	cl.PauseFetchTopics(m.cfg.Topic)

	fa := m.cfg.fenceAfter
	if fa == 0 {
		fa = session * 2 / 3
	}
	m.fenceAfter.Store(int64(max(fa, 0)))
	m.mu.Lock()
	if m.closing.Load() {
		m.mu.Unlock()
		cl.Close()
		return context.Canceled
	}
	m.protocol, m.session = protocol, session
	m.cl.Store(cl)
	m.mu.Unlock()
	m.log.Info("joining the consumer group", "protocol", protocol, "session_timeout", session, "topic", m.cfg.Topic, "client_id", m.cfg.Instance)
	return nil
}

// chooseProtocol returns ProtocolConsumer when every broker offers
// ConsumerGroupHeartbeat v1 (Kafka 4.0's stable consumer protocol; a broker
// that has it switched off does not list it), else ProtocolClassic.
func chooseProtocol(ctx context.Context, adm *kadm.Client) (string, error) {
	vs, err := adm.ApiVersions(ctx)
	if err != nil {
		return "", err
	}
	if len(vs) == 0 {
		return "", errors.New("no broker answered")
	}
	protocol := ProtocolConsumer
	for _, v := range vs {
		if v.Err != nil {
			return "", fmt.Errorf("broker %d: %w", v.NodeID, v.Err)
		}
		if max, ok := v.KeyMaxVersion(int16(kmsg.ConsumerGroupHeartbeat)); !ok || max < 1 {
			protocol = ProtocolClassic
		}
	}
	return protocol, nil
}

// applyGroupSession sets the group's consumer.session.timeout.ms to
// SessionTimeout and its heartbeat interval to a third of it, and returns the
// session timeout the group has then: the brokers bound both (by default
// 45..60 s and 5..15 s), and a value they refuse leaves the group's own,
// which is logged.
func (m *Member) applyGroupSession(ctx context.Context, cl *kgo.Client) time.Duration {
	want := m.cfg.SessionTimeout
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	err := alterGroupConfigs(ctx, cl, m.cfg.Group, map[string]string{
		configSessionTimeout:    ms(want),
		configHeartbeatInterval: ms(want / 3),
	})
	if err == nil {
		return want
	}
	// The heartbeat interval may be what the brokers refuse.
	if alterGroupConfigs(ctx, cl, m.cfg.Group, map[string]string{configSessionTimeout: ms(want)}) == nil {
		m.log.Info("the consumer group's heartbeat interval could not be set to a third of group_session_timeout_ms: the group's own applies", "err", err)
		return want
	}
	got, ok := describeGroupSession(ctx, cl, m.cfg.Group)
	args := []any{"group_session_timeout_ms", want.Milliseconds(), "err", err}
	if ok {
		args = append(args, "in_force_ms", got.Milliseconds())
	}
	m.log.Warn("group_session_timeout_ms could not be set on the consumer group (the brokers bound it with group.consumer.min/max.session.timeout.ms, or refuse group configurations): the group's own session timeout applies", args...)
	if ok {
		return got
	}
	return want
}

func alterGroupConfigs(ctx context.Context, cl *kgo.Client, group string, kv map[string]string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	for k, v := range kv {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value, c.Op = k, kmsg.StringPtr(v), kmsg.IncrementalAlterConfigOpSet
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			if r.ErrorMessage != nil {
				return fmt.Errorf("%w: %s", err, *r.ErrorMessage)
			}
			return err
		}
	}
	return nil
}

func describeGroupSession(ctx context.Context, cl *kgo.Client, group string) (time.Duration, bool) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	res.ConfigNames = []string{configSessionTimeout}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, false
	}
	for _, r := range resp.Resources {
		for _, c := range r.Configs {
			if c.Name != configSessionTimeout || c.Value == nil {
				continue
			}
			if n, err := strconv.ParseInt(*c.Value, 10, 64); err == nil && n > 0 {
				return time.Duration(n) * time.Millisecond, true
			}
		}
	}
	return 0, false
}
