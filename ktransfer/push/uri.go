package push

import (
	"strconv"
	"strings"
)

// Placeholder kinds of a compiled URI template.
const (
	segLiteral = iota
	segTopic
	segPartition
	segTransID
	segKey
	segMethod
)

var placeholders = map[string]uint8{
	"{#TOPIC}":     segTopic,
	"{#PARTITION}": segPartition,
	"{#TRANSID}":   segTransID,
	"{#KEY}":       segKey,
	"{#METHOD}":    segMethod,
}

// segment is a literal run or a placeholder of a URI template.
type segment struct {
	kind  uint8
	query bool // the placeholder stands after the first "?": query escaping
	lit   string
}

// template is a URI compiled once, expanded per request without searching it.
type template []segment

// compileURI splits tmpl into literals and placeholders. Text that looks like a
// placeholder but names none of them stays literal. Placeholders after the
// template's first "?" are in the query, the others in the path.
func compileURI(tmpl string) template {
	var t template
	q := strings.IndexByte(tmpl, '?')
	if q < 0 {
		q = len(tmpl)
	}
	lit := 0 // start of the pending literal
	for i := 0; i < len(tmpl); {
		j := strings.Index(tmpl[i:], "{#")
		if j < 0 {
			break
		}
		i += j
		end := strings.IndexByte(tmpl[i:], '}')
		if end < 0 {
			break
		}
		kind, ok := placeholders[tmpl[i:i+end+1]]
		if !ok {
			i += 2
			continue
		}
		if lit < i {
			t = append(t, segment{kind: segLiteral, lit: tmpl[lit:i]})
		}
		t = append(t, segment{kind: kind, query: i > q})
		i += end + 1
		lit = i
	}
	if lit < len(tmpl) {
		t = append(t, segment{kind: segLiteral, lit: tmpl[lit:]})
	}
	return t
}

// appendTo appends the template expanded for r to dst.
func (t template) appendTo(dst []byte, r *Record) []byte {
	for _, s := range t {
		switch s.kind {
		case segLiteral:
			dst = append(dst, s.lit...)
		case segTopic:
			dst = appendEscape(dst, r.Topic, s.query)
		case segPartition:
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case segTransID:
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case segKey:
			dst = appendEscape(dst, r.Key, s.query)
		case segMethod:
			if r.Method == "" {
				dst = append(dst, '*')
			} else {
				dst = appendEscape(dst, r.Method, s.query)
			}
		}
	}
	return dst
}

// ExpandURI returns tmpl with the placeholders replaced for r: {#TOPIC} the topic,
// {#PARTITION} the partition, {#TRANSID} the offset, {#KEY} the key and {#METHOD}
// the method ("*" when r.Method is empty). Key, topic and method are escaped: in
// the path (before the template's first "?") as url.PathEscape does, a space
// becoming %20 and "/" %2F, so a value stays one path segment; in the query as
// url.QueryEscape does, a space becoming "+". No value can break the request line,
// add path segments or add query parameters; valid topic names and plain method
// names come out unchanged. A Pusher compiles its template once; ExpandURI
// compiles tmpl on every call.
func ExpandURI(tmpl string, r Record) string {
	return string(compileURI(tmpl).appendTo(nil, &r))
}

const upperHex = "0123456789ABCDEF"

// appendEscape appends s query-escaped when query is set, else path-escaped.
func appendEscape[S string | []byte](dst []byte, s S, query bool) []byte {
	if query {
		return appendQueryEscape(dst, s)
	}
	return appendPathEscape(dst, s)
}

// appendQueryEscape appends s escaped exactly as url.QueryEscape escapes it,
// without allocating.
func appendQueryEscape[S string | []byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		case c == ' ':
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return dst
}

// appendPathEscape appends s escaped exactly as url.PathEscape escapes it (one
// path segment: "/", ";", ",", "?" and a space are escaped, "$&+:=@" are not),
// without allocating.
func appendPathEscape[S string | []byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~',
			c == '$', c == '&', c == '+', c == ':', c == '=', c == '@':
			dst = append(dst, c)
		default:
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return dst
}
