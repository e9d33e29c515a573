package loadgen

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestMsgpackBody(t *testing.T) {
	keys := []string{"", "k17", strings.Repeat("k", 40), strings.Repeat("x", 300)}
	for _, key := range keys {
		minSize := MsgpackMinSize(key)
		sizes := []int{minSize, minSize + 1, 200, 1 << 20}
		// Every size across the format boundaries of the data field.
		for _, rest := range []int{32, 33, 34, 257, 258, 259, 65538, 65539, 65540, 65541} {
			sizes = append(sizes, minSize-1+rest)
		}
		for size := minSize; size < minSize+300; size++ {
			sizes = append(sizes, size)
		}
		for _, size := range sizes {
			if size < minSize {
				continue
			}
			seq := uint64(size) * 7919
			b, err := MsgpackBody(size, key, seq)
			if err != nil {
				t.Fatalf("MsgpackBody(%d, %d-byte key, %d): %v", size, len(key), seq, err)
			}
			if len(b) != size {
				t.Fatalf("MsgpackBody(%d, %d-byte key): got %d bytes, want %d", size, len(key), len(b), size)
			}
			r := bytes.NewReader(b)
			var m map[string]any
			if err := msgpack.NewDecoder(r).Decode(&m); err != nil {
				t.Fatalf("size %d, %d-byte key: decode: %v", size, len(key), err)
			}
			if r.Len() != 0 {
				t.Fatalf("size %d: %d bytes left after one msgpack value, want 0", size, r.Len())
			}
			if len(m) != 4 || m["topic"] != BodyTopic || m["method"] != BodyMethod || m["key"] != key {
				t.Fatalf("size %d: decoded %v, want topic %q method %q key %q", size, m, BodyTopic, BodyMethod, key)
			}
			var data []byte
			switch d := m["data"].(type) {
			case []byte:
				data = d
			case string:
				data = []byte(d)
			default:
				t.Fatalf("size %d: data is %T, want bin or str", size, m["data"])
			}
			prefix := strconv.FormatUint(seq, 10) + ":"
			if want := prefix[:min(len(prefix), len(data))]; !bytes.HasPrefix(data, []byte(want)) {
				t.Fatalf("size %d: data starts %q, want %q", size, data[:min(len(data), 20)], want)
			}
		}
	}
}

func TestMsgpackBodyTooSmall(t *testing.T) {
	_, err := MsgpackBody(MsgpackMinSize("k1")-1, "k1", 0)
	if !errors.Is(err, ErrBodySize) {
		t.Errorf("got error %v, want %v", err, ErrBodySize)
	}
}

func TestMsgpackBodyDiffersBySeq(t *testing.T) {
	a, _ := MsgpackBody(200, "k", 1)
	b, _ := MsgpackBody(200, "k", 2)
	if bytes.Equal(a, b) {
		t.Errorf("bodies for seq 1 and 2 are equal, want them to differ")
	}
}
