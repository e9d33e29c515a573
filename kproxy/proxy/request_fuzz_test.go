package proxy

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzParseAcks checks that ParseAcks accepts exactly the three spellings of the
// specification, that every level prints as a spelling that parses back to it,
// and that every refusal is ErrInvalidAcks (a 400 invalid_acks).
func FuzzParseAcks(f *testing.F) {
	for _, s := range []string{"0", "1", "-1", "", "all", "+1", "01", "-0", " 1", "1 ", "2", "-2", "１"} {
		f.Add(s)
	}
	want := map[string]Acks{"0": AcksNone, "1": AcksLeader, "-1": AcksAll}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAcks(s)
		w, legal := want[s]
		if !legal {
			if !errors.Is(err, ErrInvalidAcks) {
				t.Fatalf("ParseAcks(%q) = %d, %v; want ErrInvalidAcks", s, a, err)
			}
			if code := Code(err); code != CodeInvalidAcks {
				t.Fatalf("ParseAcks(%q) error has code %s, want invalid_acks", s, code)
			}
			return
		}
		if err != nil || a != w {
			t.Fatalf("ParseAcks(%q) = %d, %v; want %d, nil", s, a, err, w)
		}
		if a.String() != s {
			t.Fatalf("Acks(%d).String() = %q, want %q", a, a.String(), s)
		}
		if back, err := ParseAcks(a.String()); err != nil || back != a {
			t.Fatalf("ParseAcks(%q) = %d, %v; want %d", a.String(), back, err, a)
		}
	})
}

// FuzzAuthorization sends arbitrary Authorization header values to the Bearer
// check with one configured token. A request is let in only when the header
// carries that token after "Bearer " (in any case; surrounding white space aside); the
// token itself, however padded with spaces or tabs, is always let in; without
// configured tokens every request is.
func FuzzAuthorization(f *testing.F) {
	const tok = "s3cr3t-t0ken-0123456789"
	for _, h := range []string{
		"Bearer " + tok, "Bearer  " + tok + " ", "Bearer\t" + tok, "bearer " + tok, "Basic " + tok,
		"Bearer " + tok + "x", "Bearer " + tok[:len(tok)-1], "Bearer", "Bearer ", "", tok,
		"Bearer " + tok + ", Bearer other", "Bearer " + tok + "\x00",
	} {
		f.Add(h, tok, " ")
	}
	f.Add("Bearer x", "x", "\t")
	f.Fuzz(func(t *testing.T, header, token, pad string) {
		if strings.Trim(pad, " \t") != "" {
			pad = " "
		}
		if token == "" || strings.TrimSpace(token) != token {
			// auth.tokens are checked to be long random strings; padding is
			// not part of a token.
			token = tok
		}
		p := &Proxy{tokens: digestTokens([]string{token})}
		open := &Proxy{}
		req := func(h string) bool {
			r := httptest.NewRequest("POST", "/commit?topic=t", nil)
			r.Header.Set("Authorization", h)
			if !open.Authorized(r) {
				t.Fatalf("without tokens, Authorization %q is refused", h)
			}
			return p.Authorized(r)
		}

		if req(header) {
			// The scheme name is case-insensitive.
			ok := len(header) >= len("Bearer ") && strings.EqualFold(header[:len("Bearer ")], "Bearer ")
			if !ok || strings.TrimSpace(header[len("Bearer "):]) != token {
				t.Fatalf("token %q: Authorization %q is let in", token, header)
			}
		}
		for _, h := range []string{"Bearer " + token, "Bearer " + pad + token + pad, "bEARER " + token} {
			if !req(h) {
				t.Fatalf("token %q: Authorization %q is refused", token, h)
			}
		}
		if token != tok && req("Bearer "+tok) {
			t.Fatalf("token %q: another token %q is let in", token, tok)
		}
	})
}

func FuzzValidTopic(f *testing.F) {
	for _, s := range []string{"orders", ".", "..", "a/b", strings.Repeat("a", 250), "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		err := ValidTopic(topic)
		legal := topic != "" && len(topic) <= 249 && topic != "." && topic != ".." &&
			strings.Trim(topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
		if (err == nil) != legal {
			t.Fatalf("ValidTopic(%q) = %v, want legal=%v", topic, err, legal)
		}
	})
}
