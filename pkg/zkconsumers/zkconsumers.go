// Package zkconsumers is the Kafka 0.8 high-level-consumer layout in ZooKeeper that
// ktransfer writes and kmonitor (and tools such as Burrow's ZooKeeper reader) read:
//
//	{chroot}/consumers/{group}/ids/{instance}            ephemeral, registration JSON
//	{chroot}/consumers/{group}/owners/{topic}/{partition} ephemeral, data = instance id
//	{chroot}/consumers/{group}/offsets/{topic}/{partition} persistent, decimal offset
//
// The offset is the next offset to consume (all below it are done). A group is a
// ktransfer module. The rules for the names the paths are made of (node names,
// the chroot) are ZooKeeper's, in package zkconn.
package zkconsumers

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Layout builds the paths of one ZooKeeper chroot.
type Layout struct {
	// Chroot is the prefix of every path, "/" or e.g. "/mq/test_cluster".
	Chroot string
}

// New returns the layout under chroot ("" means "/").
func New(chroot string) Layout {
	if chroot == "" {
		chroot = "/"
	}
	return Layout{Chroot: path.Clean("/" + chroot)}
}

// Consumers is {chroot}/consumers.
func (l Layout) Consumers() string { return path.Join(l.Chroot, "consumers") }

// Group is {chroot}/consumers/{group}.
func (l Layout) Group(group string) string { return path.Join(l.Consumers(), group) }

// IDs is the directory of a group's registered instances.
func (l Layout) IDs(group string) string { return path.Join(l.Group(group), "ids") }

// ID is one instance's registration node.
func (l Layout) ID(group, instance string) string { return path.Join(l.IDs(group), instance) }

// OwnersTopic is the directory of a topic's partition owners.
func (l Layout) OwnersTopic(group, topic string) string {
	return path.Join(l.Group(group), "owners", topic)
}

// Owner is the owner node of one partition.
func (l Layout) Owner(group, topic string, partition int32) string {
	return path.Join(l.OwnersTopic(group, topic), strconv.Itoa(int(partition)))
}

// OffsetsRoot is the directory of a group's topics with offsets.
func (l Layout) OffsetsRoot(group string) string { return path.Join(l.Group(group), "offsets") }

// OffsetsTopic is the directory of a topic's committed offsets.
func (l Layout) OffsetsTopic(group, topic string) string {
	return path.Join(l.OffsetsRoot(group), topic)
}

// Offset is the committed-offset node of one partition.
func (l Layout) Offset(group, topic string, partition int32) string {
	return path.Join(l.OffsetsTopic(group, topic), strconv.Itoa(int(partition)))
}

// BrokerIDs is {chroot}/brokers/ids, where Kafka in ZooKeeper mode registers brokers.
func (l Layout) BrokerIDs() string { return path.Join(l.Chroot, "brokers/ids") }

// EncodeOffset is the data of an offset node: the decimal offset.
func EncodeOffset(offset int64) []byte { return strconv.AppendInt(nil, offset, 10) }

// DecodeOffset parses an offset node's data, tolerating surrounding white space.
func DecodeOffset(data []byte) (int64, error) {
	s := strings.TrimSpace(string(data))
	off, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("offset node holds %q, not a decimal offset", s)
	}
	if off < 0 {
		return 0, fmt.Errorf("offset node holds negative offset %d", off)
	}
	return off, nil
}

// Registration is the JSON of an instance's ids node, as Kafka 0.8 consumers write it.
// Readers of the layout (the original kmonitor, Burrow) read the first four fields
// and ignore the others.
type Registration struct {
	Version      int            `json:"version"`
	Subscription map[string]int `json:"subscription"`
	Pattern      string         `json:"pattern"`
	Timestamp    string         `json:"timestamp"`
	// OpsListen is the address of the instance's operations endpoints (/status,
	// /metrics), so an operator finds each process of a host; empty when it
	// serves none. Added by ktransfer, not part of Kafka's layout.
	OpsListen string `json:"ops_listen,omitempty"`
	// Host and PID name the process behind the instance id. Added by ktransfer.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
}

// NewRegistration returns the registration of an instance consuming topic, stamped now.
func NewRegistration(topic string, now time.Time) Registration {
	return Registration{
		Version:      1,
		Subscription: map[string]int{topic: 1},
		Pattern:      "static",
		Timestamp:    strconv.FormatInt(now.UnixMilli(), 10),
	}
}

// Encode returns the registration's JSON.
func (r Registration) Encode() []byte {
	b, _ := json.Marshal(r)
	return b
}

// ParsePartition parses a partition node name. Only the name Layout writes is
// accepted ("5", not "05" or "+5"), so two nodes never stand for one partition.
func ParsePartition(name string) (int32, error) {
	p, err := strconv.ParseInt(name, 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != name {
		return 0, fmt.Errorf("%q is not a partition number", name)
	}
	return int32(p), nil
}
