// Package partition maps record keys to Kafka partitions and to workers, with
// the hash functions producers in the field use.
//
// Every function here is pure, allocation-free and safe for concurrent use.
// The same key always maps to the same partition for a given partition count,
// which is what lets a service serialise the records of one key through one
// partition.
package partition

import (
	"fmt"
	"hash/crc32"
	"strings"
)

// Func maps a non-empty key to a partition in [0, n). The caller guarantees
// n > 0; a Func may panic (integer division by zero) when n is 0 and may return
// values outside [0, n) when n is negative. A Func is pure and safe for
// concurrent use.
type Func func(key []byte, n int32) int32

// FNV-1a 32-bit parameters (FNV spec, as used by hash/fnv.New32a).
const (
	fnvOffset32 uint32 = 2166136261
	fnvPrime32  uint32 = 16777619
)

// FNV1a32 returns the 32-bit FNV-1a hash of key, the value hash/fnv.New32a
// computes, without allocating.
func FNV1a32(key []byte) uint32 {
	h := fnvOffset32
	for _, c := range key {
		h ^= uint32(c)
		h *= fnvPrime32
	}
	return h
}

// Sarama partitions key the way sarama's HashPartitioner did in 2015, which
// the original kproxy used: the FNV-1a 32-bit hash is reinterpreted as a
// signed int32, taken modulo n, and negated when negative. Requires n > 0.
func Sarama(key []byte, n int32) int32 {
	p := int32(FNV1a32(key)) % n
	if p < 0 {
		p = -p
	}
	return p
}

// Murmur2 partitions key the way the Kafka Java client's default partitioner
// does for keyed records: Kafka's murmur2 hash (seed 0x9747b28c) with the sign
// bit masked off, modulo n. Requires n > 0.
func Murmur2(key []byte, n int32) int32 {
	return int32(murmur2(key)&0x7fffffff) % n
}

// CRC32 partitions key as IEEE crc32(key) modulo n, with unsigned arithmetic,
// matching lua-resty-kafka and librdkafka's consistent partitioner. Requires
// n > 0.
func CRC32(key []byte, n int32) int32 {
	return int32(crc32.ChecksumIEEE(key) % uint32(n))
}

// Worker maps key to a worker index in [0, workers) as FNV1a32(key) modulo
// workers, so records with the same key are always handled by the same
// worker. Requires workers > 0.
func Worker(key []byte, workers int) int {
	return int(uint64(FNV1a32(key)) % uint64(workers))
}

// murmur2 is the 32-bit MurmurHash2 as implemented in Kafka's
// org.apache.kafka.common.utils.Utils.murmur2: little-endian 4-byte blocks,
// seed 0x9747b28c, and the tail mixed in before the final avalanche.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(data))
	for len(data) >= 4 {
		k := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Partitioner names accepted by Lookup, default first.
const (
	// NameSarama selects Sarama.
	NameSarama = "sarama"
	// NameMurmur2 selects Murmur2.
	NameMurmur2 = "murmur2"
	// NameCRC32 selects CRC32.
	NameCRC32 = "crc32"
)

// Names returns the names Lookup accepts, the default ("sarama") first. The
// caller owns the returned slice.
func Names() []string {
	return []string{NameSarama, NameMurmur2, NameCRC32}
}

// Lookup returns the Func registered under name ("sarama", "murmur2" or
// "crc32"; matched exactly, case-sensitive). An unknown name yields an error
// wrapping ErrUnknown that lists the valid choices.
func Lookup(name string) (Func, error) {
	switch name {
	case NameSarama:
		return Sarama, nil
	case NameMurmur2:
		return Murmur2, nil
	case NameCRC32:
		return CRC32, nil
	}
	return nil, fmt.Errorf("%w %q (valid: %s)", ErrUnknown, name, strings.Join(Names(), ", "))
}
