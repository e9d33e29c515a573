package partition

import (
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// stdFNV1a32 is the reference FNV-1a from the standard library.
func stdFNV1a32(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// randomKeys returns count reproducible random keys of length 1..64.
func randomKeys(t testing.TB, count int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewSource(20150601))
	keys := make([][]byte, count)
	for i := range keys {
		k := make([]byte, 1+rng.Intn(64))
		rng.Read(k)
		keys[i] = k
	}
	return keys
}

var partitionCounts = []int32{1, 2, 3, 7, 10, 12, 16, 64, 100, 1000, 2147483647}

func TestFNV1a32Vectors(t *testing.T) {
	// Published FNV-1a 32-bit test vectors.
	tests := []struct {
		in   string
		want uint32
	}{
		{"", 0x811c9dc5},
		{"a", 0xe40c292c},
		{"foobar", 0xbf9cf968},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			if got := FNV1a32([]byte(tt.in)); got != tt.want {
				t.Errorf("FNV1a32(%q) = %#x, want %#x", tt.in, got, tt.want)
			}
		})
	}
}

func TestFNV1a32MatchesStdlib(t *testing.T) {
	for _, k := range randomKeys(t, 2000) {
		if got, want := FNV1a32(k), stdFNV1a32(k); got != want {
			t.Fatalf("FNV1a32(%x) = %#x, want %#x", k, got, want)
		}
	}
}

func TestSaramaVectors(t *testing.T) {
	tests := []struct {
		key  string
		n    int32
		want int32
	}{
		// fnv("a") = 0xe40c292c, as int32 -468965076: negative branch.
		{"a", 10, 6},
		{"a", 7, 6},
		// fnv("foobar") = 0xbf9cf968, as int32 -1080231576.
		{"foobar", 12, 0},
		{"foobar", 100, 76},
		// fnv("b") = 0xe70c2de5, as int32 -418632219.
		{"b", 1, 0},
		{"b", 16, 11},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.key, tt.n), func(t *testing.T) {
			// The pinned value must agree with the formula applied to
			// the standard library's FNV-1a.
			ref := int32(stdFNV1a32([]byte(tt.key))) % tt.n
			if ref < 0 {
				ref = -ref
			}
			if ref != tt.want {
				t.Fatalf("reference formula gives %d, want %d: table is wrong", ref, tt.want)
			}
			if got := Sarama([]byte(tt.key), tt.n); got != tt.want {
				t.Errorf("Sarama(%q, %d) = %d, want %d", tt.key, tt.n, got, tt.want)
			}
		})
	}
}

func TestSaramaNegativeBranch(t *testing.T) {
	// Find keys whose hash is negative as int32 with a non-zero remainder,
	// where the negation actually changes the result.
	var hit int
	for _, k := range randomKeys(t, 500) {
		h := int32(stdFNV1a32(k))
		if h >= 0 || h%10 == 0 {
			continue
		}
		hit++
		want := -(h % 10)
		if got := Sarama(k, 10); got != want {
			t.Fatalf("Sarama(%x, 10) = %d, want %d (hash %d)", k, got, want, h)
		}
	}
	if hit == 0 {
		t.Fatal("got no key with a negative hash, want some to exercise the branch")
	}
}

func TestSaramaMatchesKgoSaramaCompat(t *testing.T) {
	ref := kgo.SaramaCompatHasher(stdFNV1a32)
	for _, k := range randomKeys(t, 2000) {
		for _, n := range partitionCounts {
			if got, want := Sarama(k, n), ref(k, int(n)); int(got) != want {
				t.Fatalf("Sarama(%x, %d) = %d, want %d", k, n, got, want)
			}
		}
	}
}

func TestMurmur2KafkaVectors(t *testing.T) {
	// org.apache.kafka.common.utils.UtilsTest#testMurmur2.
	tests := []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := int32(murmur2([]byte(tt.in))); got != tt.want {
				t.Errorf("murmur2(%q) = %d, want %d", tt.in, got, tt.want)
			}
			want := (tt.want & 0x7fffffff) % 12
			if got := Murmur2([]byte(tt.in), 12); got != want {
				t.Errorf("Murmur2(%q, 12) = %d, want %d", tt.in, got, want)
			}
		})
	}
}

func TestMurmur2MatchesKgo(t *testing.T) {
	// kgo.StickyKeyPartitioner(nil) is the Java client's keyed placement.
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	keys := randomKeys(t, 3000)
	// Every tail length (0..3 bytes after the 4-byte blocks) and short keys.
	for i := 1; i <= 9; i++ {
		keys = append(keys, []byte(strings.Repeat("k", i)))
	}
	for _, k := range keys {
		for _, n := range partitionCounts {
			want := tp.Partition(&kgo.Record{Key: k}, int(n))
			if got := Murmur2(k, n); int(got) != want {
				t.Fatalf("Murmur2(%x, %d) = %d, want %d", k, n, got, want)
			}
		}
	}
}

func TestCRC32Vectors(t *testing.T) {
	tests := []struct {
		key  string
		n    int32
		want int32
	}{
		// crc32("123456789") = 0xcbf43926 = 3421780262, the standard check value.
		{"123456789", 10, 2},
		{"123456789", 7, 3421780262 % 7},
		{"123456789", 1, 0},
		// crc32("a") = 0xe8b7be43 = 3904355907: high bit set, stays unsigned.
		{"a", 100, 7},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.key, tt.n), func(t *testing.T) {
			if got := CRC32([]byte(tt.key), tt.n); got != tt.want {
				t.Errorf("CRC32(%q, %d) = %d, want %d", tt.key, tt.n, got, tt.want)
			}
		})
	}
}

func TestCRC32MatchesKgoSaramaHasher(t *testing.T) {
	if strconv.IntSize != 64 {
		t.Skip("kgo.SaramaHasher matches librdkafka only with 64-bit int")
	}
	// kgo documents SaramaHasher(crc32.ChecksumIEEE) as librdkafka's
	// consistent partitioner.
	ref := kgo.SaramaHasher(crc32.ChecksumIEEE)
	for _, k := range randomKeys(t, 2000) {
		for _, n := range partitionCounts {
			if got, want := CRC32(k, n), ref(k, int(n)); int(got) != want {
				t.Fatalf("CRC32(%x, %d) = %d, want %d", k, n, got, want)
			}
		}
	}
}

func TestFuncsInRange(t *testing.T) {
	for _, name := range Names() {
		f, err := Lookup(name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", name, err)
		}
		t.Run(name, func(t *testing.T) {
			for _, k := range randomKeys(t, 500) {
				for _, n := range partitionCounts {
					if got := f(k, n); got < 0 || got >= n {
						t.Fatalf("%s(%x, %d) = %d, want in [0, %d)", name, k, n, got, n)
					}
				}
			}
		})
	}
}

func TestWorker(t *testing.T) {
	tests := []struct {
		key     string
		workers int
		want    int
	}{
		{"a", 1, 0},
		{"a", 10, int(uint32(0xe40c292c) % 10)},
		{"foobar", 7, int(uint32(0xbf9cf968) % 7)},
		{"", 3, int(uint32(0x811c9dc5) % 3)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.key, tt.workers), func(t *testing.T) {
			if got := Worker([]byte(tt.key), tt.workers); got != tt.want {
				t.Errorf("Worker(%q, %d) = %d, want %d", tt.key, tt.workers, got, tt.want)
			}
		})
	}
	// Unlike Sarama, the hash is unsigned: no key lands on a negative or
	// mirrored index.
	for _, k := range randomKeys(t, 500) {
		want := int(stdFNV1a32(k) % 13)
		if got := Worker(k, 13); got != want {
			t.Fatalf("Worker(%x, 13) = %d, want %d", k, got, want)
		}
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name    string
		want    Func
		wantErr bool
	}{
		{"sarama", Sarama, false},
		{"murmur2", Murmur2, false},
		{"crc32", CRC32, false},
		{"", nil, true},
		{"Sarama", nil, true},
		{"fnv", nil, true},
		{"murmur2 ", nil, true},
	}
	key := []byte("lookup-key")
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.name), func(t *testing.T) {
			f, err := Lookup(tt.name)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got nil error, want one")
				}
				if !errors.Is(err, ErrUnknown) {
					t.Errorf("got error %v, want it to wrap ErrUnknown", err)
				}
				for _, valid := range Names() {
					if !strings.Contains(err.Error(), valid) {
						t.Errorf("got error %q, want it to name %q", err, valid)
					}
				}
				if f != nil {
					t.Errorf("got non-nil Func with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			// Funcs are not comparable: compare behaviour on many inputs.
			for _, n := range partitionCounts {
				if got, want := f(key, n), tt.want(key, n); got != want {
					t.Errorf("Lookup(%q)(key, %d) = %d, want %d", tt.name, n, got, want)
				}
			}
		})
	}
}

func TestLookupDistinct(t *testing.T) {
	// The three functions must actually differ, or TestLookup could not
	// tell them apart.
	key := []byte("lookup-key")
	seen := map[string]string{}
	for _, name := range Names() {
		f, _ := Lookup(name)
		var sig strings.Builder
		for _, n := range partitionCounts {
			fmt.Fprintf(&sig, "%d,", f(key, n))
		}
		if other, dup := seen[sig.String()]; dup {
			t.Errorf("got %s and %s placing the key identically, want them to differ", name, other)
		}
		seen[sig.String()] = name
	}
}

func TestNames(t *testing.T) {
	want := []string{"sarama", "murmur2", "crc32"}
	got := Names()
	if !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if Names()[0] != "sarama" {
		t.Errorf("Names() shares its slice with callers, want a fresh copy")
	}
}

func TestZeroAllocs(t *testing.T) {
	key := []byte("some-record-key-0123456789")
	fns := map[string]func(){
		"FNV1a32": func() { _ = FNV1a32(key) },
		"Sarama":  func() { _ = Sarama(key, 12) },
		"Murmur2": func() { _ = Murmur2(key, 12) },
		"CRC32":   func() { _ = CRC32(key, 12) },
		"Worker":  func() { _ = Worker(key, 8) },
	}
	for name, fn := range fns {
		if got := testing.AllocsPerRun(100, fn); got != 0 {
			t.Errorf("%s: got %v allocs per run, want 0", name, got)
		}
	}
}

func benchKey() []byte { return []byte("user:1234567890:session") }

func BenchmarkFNV1a32(b *testing.B) {
	key := benchKey()
	b.ReportAllocs()
	b.SetBytes(int64(len(key)))
	for b.Loop() {
		FNV1a32(key)
	}
}

func BenchmarkSarama(b *testing.B) {
	key := benchKey()
	b.ReportAllocs()
	b.SetBytes(int64(len(key)))
	for b.Loop() {
		Sarama(key, 12)
	}
}

func BenchmarkMurmur2(b *testing.B) {
	key := benchKey()
	b.ReportAllocs()
	b.SetBytes(int64(len(key)))
	for b.Loop() {
		Murmur2(key, 12)
	}
}

func BenchmarkCRC32(b *testing.B) {
	key := benchKey()
	b.ReportAllocs()
	b.SetBytes(int64(len(key)))
	for b.Loop() {
		CRC32(key, 12)
	}
}

func BenchmarkWorker(b *testing.B) {
	key := benchKey()
	b.ReportAllocs()
	b.SetBytes(int64(len(key)))
	for b.Loop() {
		Worker(key, 8)
	}
}
