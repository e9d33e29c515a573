package push

import (
	"fmt"
	"net/textproto"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// MaxForwardedValue bounds the value of a record header sent as an HTTP header;
// a longer value is not sent.
const MaxForwardedValue = 8 << 10

// notForwardable are headers that frame or route the request: a record must not
// set them.
var notForwardable = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true, "Expect": true,
	"Proxy-Connection": true,
}

// CheckForwardHeaders returns one error for each name of Config.ForwardHeaders
// that New would refuse: not a header name, a header that frames the request,
// one also configured in headers, or a name listed twice.
func CheckForwardHeaders(names []string, headers []map[string]string) []error {
	p := &Pusher{cfg: Config{Headers: headers, ForwardHeaders: names}}
	return p.buildForward()
}

// buildForward checks Config.ForwardHeaders and keeps their canonical names.
func (p *Pusher) buildForward() []error {
	var errs []error
	configured := map[string]bool{}
	for _, m := range p.cfg.Headers {
		for k := range m {
			configured[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))] = true
		}
	}
	seen := map[string]bool{}
	for i, n := range p.cfg.ForwardHeaders {
		name := textproto.CanonicalMIMEHeaderKey(n)
		switch {
		case !http1.IsToken(n):
			errs = append(errs, fmt.Errorf("forward_headers[%d]: %q is not a header name", i, n))
		case notForwardable[name]:
			errs = append(errs, fmt.Errorf("forward_headers[%d]: %s frames the request and cannot come from a record", i, name))
		case configured[name]:
			errs = append(errs, fmt.Errorf("forward_headers[%d]: %s is also a configured header; keep one", i, name))
		case seen[name]:
			errs = append(errs, fmt.Errorf("forward_headers[%d]: %s is listed twice", i, name))
		default:
			seen[name] = true
			p.forward = append(p.forward, n)
		}
	}
	return errs
}

// appendForwarded appends, for each name of Config.ForwardHeaders, the first
// record header of that name (in any case) as an HTTP header line. A value with
// control characters or longer than MaxForwardedValue is not sent (it could
// split the request) and reported to Events.HeaderDropped.
func (p *Pusher) appendForwarded(b []byte, hs []kgo.RecordHeader) []byte {
	if len(p.forward) == 0 || len(hs) == 0 {
		return b
	}
	for _, name := range p.forward {
		for _, h := range hs {
			if !strings.EqualFold(h.Key, name) {
				continue
			}
			if len(h.Value) > MaxForwardedValue || !http1.ValidFieldValue(h.Value) {
				if p.ev.HeaderDropped != nil {
					p.ev.HeaderDropped(name)
				}
				break
			}
			b = http1.AppendField(b, name, h.Value)
			break
		}
	}
	return b
}
