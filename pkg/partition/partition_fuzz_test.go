package partition

import (
	"hash/crc32"
	"hash/fnv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// javaMurmur2 is org.apache.kafka.common.utils.Utils.murmur2 transcribed with
// Java's signed 32-bit int arithmetic (>>> as a shift of the unsigned value),
// so it shares no code with murmur2.
func javaMurmur2(data []byte) int32 {
	length := int32(len(data))
	const seed = int32(-1756908916) // 0x9747b28c
	const m = int32(0x5bd1e995)
	const r = 24
	urs := func(x int32, n uint) int32 { return int32(uint32(x) >> n) }
	h := seed ^ length
	length4 := length / 4
	for i := int32(0); i < length4; i++ {
		i4 := i * 4
		k := int32(data[i4+0]) + int32(data[i4+1])<<8 + int32(data[i4+2])<<16 + int32(data[i4+3])<<24
		k *= m
		k ^= urs(k, r)
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= int32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= int32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= int32(data[tail])
		h *= m
	}
	h ^= urs(h, 13)
	h *= m
	h ^= urs(h, 15)
	return h
}

// FuzzPartitioners checks every partitioner against the formula it claims to
// follow, computed independently: sarama's HashPartitioner over hash/fnv, the
// Kafka Java client's toPositive(murmur2) % n, IEEE crc32 % n over hash/crc32,
// and FNV-1a % workers for Worker. Each answer is in range, and the kgo
// partitioner built on a Func places a keyed record exactly where the Func does.
func FuzzPartitioners(f *testing.F) {
	f.Add([]byte("a"), int32(10), 16)
	f.Add([]byte("foobar"), int32(12), 7)
	f.Add([]byte("user-42"), int32(1), 1)
	f.Add([]byte("21"), int32(2147483647), 1<<20)
	f.Add([]byte{0xff, 0xfe, 0x80, 0x00, 0x7f}, int32(3), 3)
	f.Add([]byte("a key that is longer than one murmur block"), int32(64), 64)
	f.Add([]byte{}, int32(5), 5)
	kgoParts := map[string]kgo.TopicPartitioner{}
	for _, name := range Names() {
		lf, err := Lookup(name)
		if err != nil {
			f.Fatalf("Lookup(%q): %v", name, err)
		}
		kgoParts[name] = Kgo(lf).ForTopic("t")
	}
	f.Fuzz(func(t *testing.T, key []byte, n int32, workers int) {
		// Partition counts are positive: fold the rest onto them.
		if n < 0 {
			n = -(n + 1)
		}
		if n == 0 {
			n = 1
		}
		if workers <= 0 {
			workers = 1
		}

		h := fnv.New32a()
		h.Write(key)
		sum := h.Sum32()
		if got := FNV1a32(key); got != sum {
			t.Fatalf("FNV1a32(%x) = %#x, want %#x", key, got, sum)
		}
		wantSarama := int32(sum) % n
		if wantSarama < 0 {
			wantSarama = -wantSarama
		}
		wantMurmur := (javaMurmur2(key) & 0x7fffffff) % n
		wantCRC := int32(int64(crc32.ChecksumIEEE(key)) % int64(n))

		for _, tc := range []struct {
			name string
			f    Func
			want int32
		}{
			{NameSarama, Sarama, wantSarama},
			{NameMurmur2, Murmur2, wantMurmur},
			{NameCRC32, CRC32, wantCRC},
		} {
			got := tc.f(key, n)
			if got != tc.want {
				t.Fatalf("%s(%x, %d) = %d, want %d", tc.name, key, n, got, tc.want)
			}
			if got < 0 || got >= n {
				t.Fatalf("%s(%x, %d) = %d, want a partition in [0, %d)", tc.name, key, n, got, n)
			}
			lf, err := Lookup(tc.name)
			if err != nil {
				t.Fatalf("Lookup(%q): %v", tc.name, err)
			}
			if got := lf(key, n); got != tc.want {
				t.Fatalf("Lookup(%q)(%x, %d) = %d, want %d", tc.name, key, n, got, tc.want)
			}
			if len(key) > 0 {
				tp := kgoParts[tc.name]
				rec := &kgo.Record{Topic: "t", Key: key}
				if !tp.RequiresConsistency(rec) {
					t.Fatalf("Kgo(%s): keyed record does not require consistency", tc.name)
				}
				if got := tp.Partition(rec, int(n)); got != int(tc.want) {
					t.Fatalf("Kgo(%s).Partition(key %x, %d) = %d, want %d", tc.name, key, n, got, tc.want)
				}
			}
		}

		want := int(uint64(sum) % uint64(workers))
		if got := Worker(key, workers); got != want || got < 0 || got >= workers {
			t.Fatalf("Worker(%x, %d) = %d, want %d", key, workers, got, want)
		}
	})
}
