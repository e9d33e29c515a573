package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// tokenDigest is the SHA-256 of an accepted Bearer token. Tokens are compared by
// digest: every comparison takes the same time whatever the lengths, so the time
// of an answer tells nothing about a token's length or content.
type tokenDigest [sha256.Size]byte

func digestTokens(tokens []string) []tokenDigest {
	out := make([]tokenDigest, len(tokens))
	for i, t := range tokens {
		out[i] = sha256.Sum256([]byte(t))
	}
	return out
}

// AuthRequired reports whether auth.tokens is set: requests need a Bearer token.
func (p *Proxy) AuthRequired() bool { return len(p.tokens) > 0 }

// TokenAllowed reports whether tok is one of auth.tokens; every token is
// accepted when none are configured. It compares SHA-256 digests in constant
// time with every configured token, so neither the time taken nor its length
// tells which token matched or how long one is.
func (p *Proxy) TokenAllowed(tok string) bool {
	if len(p.tokens) == 0 {
		return true
	}
	got := sha256.Sum256([]byte(tok))
	match := 0
	for i := range p.tokens {
		match |= subtle.ConstantTimeCompare(got[:], p.tokens[i][:])
	}
	return match == 1
}

// Authorized checks an HTTP request's `Authorization: Bearer TOKEN` header
// against auth.tokens; every request is authorized when none are configured.
// The scheme name is case-insensitive (RFC 9110, 11.1).
func (p *Proxy) Authorized(r *http.Request) bool {
	if len(p.tokens) == 0 {
		return true
	}
	return p.AuthorizedBy(r.Header.Get("Authorization"))
}

// AuthorizedBy is Authorized for a request whose Authorization header value
// is authorization ("" when it has none), for doors that parse requests
// themselves.
func (p *Proxy) AuthorizedBy(authorization string) bool {
	if len(p.tokens) == 0 {
		return true
	}
	tok, ok := bearer(authorization)
	return ok && p.TokenAllowed(tok)
}

// AuthorizedUpgrade is Authorized for WebSocket upgrade requests. Browsers
// cannot set Authorization on a WebSocket, so the token may also come as the
// access_token query parameter (RFC 6750, 2.3); when the request has an
// Authorization header, that header alone decides.
func (p *Proxy) AuthorizedUpgrade(r *http.Request) bool {
	if len(p.tokens) == 0 {
		return true
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := bearer(h)
		return ok && p.TokenAllowed(tok)
	}
	tok := r.URL.Query().Get("access_token")
	return tok != "" && p.TokenAllowed(tok)
}

// bearer returns the token of an Authorization header value with the Bearer
// scheme, without surrounding white space.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}
