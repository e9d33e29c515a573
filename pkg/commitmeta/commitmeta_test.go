package commitmeta

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncode(t *testing.T) {
	at := time.Date(2026, 11, 28, 11, 39, 46, 123456789, time.FixedZone("CET", 3600))
	got := Meta{Instance: "host1-4242-9f3a1c07", Time: at}.Encode()
	want := `{"instance":"host1-4242-9f3a1c07","time":"2026-11-28T10:39:46.123Z"}`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	m, err := Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	if m.Instance != "host1-4242-9f3a1c07" || !m.Time.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("round trip: got %+v, want the instance and %v", m, at.Truncate(time.Millisecond))
	}
}

func TestEncodeCutsLongInstance(t *testing.T) {
	long := strings.Repeat("é", MaxInstance) // 2 bytes each
	m, err := Decode(Meta{Instance: long, Time: time.Unix(0, 0)}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Instance) != MaxInstance || !strings.HasPrefix(long, m.Instance) {
		t.Errorf("got an instance of %d bytes, want the first %d bytes of the id", len(m.Instance), MaxInstance)
	}
}

func TestDecodeForeign(t *testing.T) {
	for _, s := range []string{
		"",
		"member-1-8d3c",                       // kgo's default: the member id
		`{"instance":"a"}`,                    // no time
		`{"time":"2026-11-28T10:39:46.123Z"}`, // no instance
		`{"instance":"","time":"2026-11-28T10:39:46.123Z"}`,
		`{"instance":"a","time":"yesterday"}`,
		`{"instance":"a","time":"2026-11-28T10:39:46.123Z"`,
	} {
		if m, err := Decode(s); !errors.Is(err, ErrForeign) {
			t.Errorf("Decode(%q): got %+v, %v, want ErrForeign", s, m, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(`{"instance":"host1-4242-9f3a1c07","time":"2026-11-28T10:39:46.123Z"}`)
	f.Add("member-1")
	f.Add(`{"instance":null,"time":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Decode(s)
		if err != nil {
			if !errors.Is(err, ErrForeign) {
				t.Fatalf("Decode(%q): error %v does not wrap ErrForeign", s, err)
			}
			return
		}
		if m.Instance == "" {
			t.Fatalf("Decode(%q): accepted without an instance", s)
		}
		// What Decode accepts, Encode writes back in a form Decode accepts
		// with the same instance (cut to MaxInstance) and millisecond.
		again, err := Decode(m.Encode())
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", m, err)
		}
		if !again.Time.Equal(m.Time.Truncate(time.Millisecond)) && m.Time.Year() >= 0 && m.Time.Year() <= 9999 {
			t.Fatalf("time %v came back as %v", m.Time, again.Time)
		}
	})
}
