package monitor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// topicPart names one Kafka partition.
type topicPart struct {
	topic     string
	partition int32
}

// logOffsets are a partition's log-start and log-end (high watermark) offsets.
type logOffsets struct {
	start, end int64
}

// partMeta is what metadata says about a partition.
type partMeta struct {
	leader  int32
	topicID [16]byte
}

// kafkaReader reads log offsets and record timestamps from one Kafka cluster.
// It sends one ListOffsets request per broker and kind (log start, log end) per
// poll, each covering every partition that broker leads, and one Fetch request
// per broker for the records whose timestamps are needed.
type kafkaReader struct {
	cl  *kgo.Client
	adm *kadm.Client
	dec kgo.Decompressor
}

func newKafkaReader(cl *kgo.Client) *kafkaReader {
	return &kafkaReader{cl: cl, adm: kadm.NewClient(cl), dec: kgo.DefaultDecompressor()}
}

// metadata returns the partitions of topics with their leaders; topics that do
// not exist are left out, and an error is returned only when no metadata could be
// read at all.
func (r *kafkaReader) metadata(ctx context.Context, topics []string) (map[topicPart]partMeta, map[string]int32, error) {
	md, err := r.adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, nil, fmt.Errorf("read Kafka metadata: %w", err)
	}
	parts := map[topicPart]partMeta{}
	counts := map[string]int32{}
	for _, td := range md.Topics {
		if td.Err != nil {
			continue
		}
		counts[td.Topic] = int32(len(td.Partitions))
		for p, pd := range td.Partitions {
			parts[topicPart{td.Topic, p}] = partMeta{leader: pd.Leader, topicID: td.ID}
		}
	}
	return parts, counts, nil
}

// byLeader groups partitions by their leader; partitions without one are left out.
func byLeader[T any](want map[topicPart]T, meta map[topicPart]partMeta) map[int32]map[topicPart]T {
	out := map[int32]map[topicPart]T{}
	for tp, v := range want {
		m, ok := meta[tp]
		if !ok || m.leader < 0 {
			continue
		}
		if out[m.leader] == nil {
			out[m.leader] = map[topicPart]T{}
		}
		out[m.leader][tp] = v
	}
	return out
}

// offsets lists the log-start and log-end offsets of parts. Partitions whose
// offsets could not be read, or that have no leader, are missing from the result;
// err joins the reasons of failed requests.
func (r *kafkaReader) offsets(ctx context.Context, parts []topicPart, meta map[topicPart]partMeta) (map[topicPart]logOffsets, error) {
	want := make(map[topicPart]struct{}, len(parts))
	for _, tp := range parts {
		want[tp] = struct{}{}
	}
	groups := byLeader(want, meta)
	var (
		mu     sync.Mutex
		starts = map[topicPart]int64{}
		ends   = map[topicPart]int64{}
		errs   []error
		wg     sync.WaitGroup
	)
	for leader, set := range groups {
		for _, kind := range []struct {
			ts  int64
			dst map[topicPart]int64
		}{{-2, starts}, {-1, ends}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := r.listOffsets(ctx, leader, set, kind.ts)
				mu.Lock()
				defer mu.Unlock()
				for tp, o := range got {
					kind.dst[tp] = o
				}
				if err != nil {
					errs = append(errs, err)
				}
			}()
		}
	}
	wg.Wait()
	out := make(map[topicPart]logOffsets, len(ends))
	for tp, e := range ends {
		if s, ok := starts[tp]; ok {
			out[tp] = logOffsets{start: s, end: e}
		}
	}
	return out, errors.Join(errs...)
}

// listOffsets sends one ListOffsets request for set to broker leader.
func (r *kafkaReader) listOffsets(ctx context.Context, leader int32, set map[topicPart]struct{}, ts int64) (map[topicPart]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	topics := map[string][]int32{}
	for tp := range set {
		topics[tp.topic] = append(topics[tp.topic], tp.partition)
	}
	for t, ps := range topics {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = t
		for _, p := range ps {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = ts
			rp.CurrentLeaderEpoch = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, r.cl.Broker(int(leader)))
	if err != nil {
		return nil, fmt.Errorf("list offsets on broker %d: %w", leader, err)
	}
	out := map[topicPart]int64{}
	var errs []error
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("list offsets of %s/%d: %w", t.Topic, p.Partition, err))
				continue
			}
			off := p.Offset
			if resp.Version == 0 && len(p.OldStyleOffsets) > 0 {
				off = p.OldStyleOffsets[0]
			}
			out[topicPart{t.Topic, p.Partition}] = off
		}
	}
	return out, errors.Join(errs...)
}

// fetchMaxBytes bounds a timestamp Fetch: per partition (one batch is enough, and
// the first partition gets its first batch whatever its size) and in total.
const (
	fetchPartitionMaxBytes = 256 << 10
	fetchMaxBytes          = 32 << 20
)

// timestamps returns, for each wanted partition and offset, the timestamp of the
// first record at or after that offset (the record at it, unless compaction or a
// transaction marker took its place). Partitions whose record could not be read
// are missing; they are asked for first in later calls via order.
func (r *kafkaReader) timestamps(ctx context.Context, want map[topicPart]int64, meta map[topicPart]partMeta, order func(a, b topicPart) bool) (map[topicPart]time.Time, error) {
	groups := byLeader(want, meta)
	var (
		mu   sync.Mutex
		out  = map[topicPart]time.Time{}
		errs []error
		wg   sync.WaitGroup
	)
	for leader, set := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := r.fetchTimestamps(ctx, leader, set, meta, order)
			mu.Lock()
			defer mu.Unlock()
			for tp, ts := range got {
				out[tp] = ts
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (r *kafkaReader) fetchTimestamps(ctx context.Context, leader int32, set map[topicPart]int64, meta map[topicPart]partMeta, order func(a, b topicPart) bool) (map[topicPart]time.Time, error) {
	tps := make([]topicPart, 0, len(set))
	for tp := range set {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool { return order(tps[i], tps[j]) })

	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = fetchMaxBytes
	req.SessionEpoch = -1
	topicIdx := map[string]int{}
	for _, tp := range tps {
		i, ok := topicIdx[tp.topic]
		if !ok {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = tp.topic
			rt.TopicID = meta[tp].topicID
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
			topicIdx[tp.topic] = i
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = tp.partition
		rp.FetchOffset = set[tp]
		rp.PartitionMaxBytes = fetchPartitionMaxBytes
		rp.CurrentLeaderEpoch = -1
		rp.LogStartOffset = -1
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	byID := map[[16]byte]string{}
	for tp, m := range meta {
		byID[m.topicID] = tp.topic
	}
	resp, err := req.RequestWith(ctx, r.cl.Broker(int(leader)))
	if err != nil {
		return nil, fmt.Errorf("fetch record timestamps from broker %d: %w", leader, err)
	}
	out := map[topicPart]time.Time{}
	var errs []error
	var stale []string
	defer func() {
		if len(stale) > 0 {
			r.cl.PurgeTopicsFromClient(stale...)
		}
	}()
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		topic := rt.Topic
		if topic == "" {
			topic = byID[rt.TopicID]
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			tp := topicPart{topic, rp.Partition}
			off, ok := set[tp]
			if !ok {
				continue
			}
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				Offset:    off,
				Topic:     topic,
				Partition: rp.Partition,
			}, rp, r.dec, nil)
			if fp.Err != nil {
				errs = append(errs, fmt.Errorf("fetch %s/%d at %d: %w", topic, rp.Partition, off, fp.Err))
				if errors.Is(fp.Err, kerr.UnknownTopicID) {
					// The topic was deleted and created again: the client's
					// cached metadata still has the old topic id.
					stale = append(stale, topic)
				}
				continue
			}
			for _, rec := range fp.Records {
				if rec.Offset >= off {
					out[tp] = rec.Timestamp
					break
				}
			}
		}
	}
	return out, errors.Join(errs...)
}
