package monitor

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendLagJSON appends rows as the JSON array /lag answers, byte for byte what
// encoding/json writes for []PartitionLag, without its reflection and the
// doubling buffer: at 80,000 rows that is most of the memory an answer costs.
func appendLagJSON(b []byte, rows []PartitionLag) []byte {
	b = append(b, '[')
	for i := range rows {
		r := &rows[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"cluster":`...)
		b = appendJSONString(b, r.Cluster)
		b = append(b, `,"module":`...)
		b = appendJSONString(b, r.Module)
		b = append(b, `,"topic":`...)
		b = appendJSONString(b, r.Topic)
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(r.Partition), 10)
		b = append(b, `,"committed":`...)
		b = appendJSONInt(b, r.Committed)
		b = append(b, `,"no_commit":`...)
		b = strconv.AppendBool(b, r.NoCommit)
		b = append(b, `,"log_start":`...)
		b = appendJSONInt(b, r.LogStart)
		b = append(b, `,"log_end":`...)
		b = appendJSONInt(b, r.LogEnd)
		b = append(b, `,"lag":`...)
		b = strconv.AppendInt(b, r.Lag, 10)
		b = append(b, `,"time_lag_seconds":`...)
		b = appendJSONFloat(b, r.TimeLagSeconds)
		b = append(b, `,"owner":`...)
		b = appendJSONString(b, r.Owner)
		b = append(b, `,"last_commit":`...)
		if r.LastCommit == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '"')
			b = r.LastCommit.AppendFormat(b, time.RFC3339Nano)
			b = append(b, '"')
		}
		b = append(b, `,"committed_by":`...)
		b = appendJSONString(b, r.CommittedBy)
		b = append(b, `,"stale":`...)
		b = strconv.AppendBool(b, r.Stale)
		b = append(b, `,"status":"`...)
		b = append(b, r.Status.String()...)
		b = append(b, `","out_of_range":`...)
		b = strconv.AppendBool(b, r.OutOfRange)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendJSONInt(b []byte, v *int64) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *v, 10)
}

// appendJSONFloat writes f as encoding/json does; a value it would refuse (NaN,
// infinity) is written as 0, which a time lag stands for then.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		f = 0
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as encoding/json.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s quoted as encoding/json does: HTML-safe, invalid
// UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
