package zkconsumers

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzDecodeOffset feeds arbitrary offset-node data, as any ZooKeeper client may
// have written it, to DecodeOffset. Whatever it accepts is the decimal integer
// strconv reads from the trimmed data, never negative, and survives a round trip
// through EncodeOffset; whatever strconv reads as a non-negative int64 is accepted.
func FuzzDecodeOffset(f *testing.F) {
	for _, s := range []string{
		"0", "42", "42\n", " 7 ", "\t123\r\n", "9223372036854775807", "9223372036854775808",
		"-1", "-0", "+5", "007", "1.5", "1e3", "0x10", "", " ", "12 34", "１２", "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		off, err := DecodeOffset(data)
		want, refErr := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		refOK := refErr == nil && want >= 0
		if (err == nil) != refOK {
			t.Fatalf("DecodeOffset(%q) = %d, %v; strconv reads %d, %v", data, off, err, want, refErr)
		}
		if err != nil {
			if off != 0 {
				t.Fatalf("DecodeOffset(%q) = %d with error %v, want 0", data, off, err)
			}
			return
		}
		if off != want {
			t.Fatalf("DecodeOffset(%q) = %d, want %d", data, off, want)
		}
		enc := EncodeOffset(off)
		if got, err := DecodeOffset(enc); err != nil || got != off {
			t.Fatalf("DecodeOffset(EncodeOffset(%d) = %q) = %d, %v; want %d, nil", off, enc, got, err, off)
		}
		if string(enc) != strconv.FormatInt(off, 10) {
			t.Fatalf("EncodeOffset(%d) = %q, want %q", off, enc, strconv.FormatInt(off, 10))
		}
	})
}

// FuzzParsePartition feeds arbitrary child names of an offsets/ or owners/ topic
// directory to ParsePartition. A name is accepted only when it is exactly how
// Layout writes that partition, so two nodes (say "5" and "05") can never stand
// for the same partition, and every node Layout writes is accepted.
func FuzzParsePartition(f *testing.F) {
	for _, s := range []string{
		"0", "17", "2147483647", "2147483648", "-1", "-0", "+5", "05", "00", " 1", "1 ", "1a", "", "٣",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := ParsePartition(name)
		if err != nil {
			if p != 0 {
				t.Fatalf("ParsePartition(%q) = %d with error %v, want 0", name, p, err)
			}
			if n, aerr := strconv.Atoi(name); aerr == nil && n >= 0 && n <= 1<<31-1 && strconv.Itoa(n) == name {
				t.Fatalf("ParsePartition(%q) = %v, want %d", name, err, n)
			}
			return
		}
		if p < 0 {
			t.Fatalf("ParsePartition(%q) = %d, want a partition >= 0", name, p)
		}
		if canon := strconv.Itoa(int(p)); canon != name {
			t.Fatalf("ParsePartition(%q) = %d, but that partition's node is named %q", name, p, canon)
		}
		l := New("/c")
		for _, node := range []string{l.Offset("g", "t", p), l.Owner("g", "t", p)} {
			if got := node[strings.LastIndexByte(node, '/')+1:]; got != name {
				t.Fatalf("node %s of partition %d is not named %q", node, p, name)
			}
		}
	})
}
