package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear in the way of HdrHistogram: values below
// 2*subCount nanoseconds get one bucket each, and every power of two above
// that is cut into subCount equal buckets. A bucket [lo, lo+w) then has
// w <= lo/subCount, so reporting its midpoint is off by at most 1/(2*subCount)
// of the value (0.4%).
const (
	subBits    = 7
	subCount   = 1 << subBits
	maxShift   = 28 // highest bucket starts at 2^35 ns; values up to 2^36-1 ns (68.7 s) are resolved
	numBuckets = subCount * (maxShift + 2)

	// HistogramMax is the largest latency the Histogram resolves; larger
	// values are counted in its last bucket (Max still reports them exactly).
	HistogramMax = time.Duration(1<<(subBits+1+maxShift) - 1)
)

// Histogram is a fixed-memory latency histogram (about 30 KiB) with
// log-linear buckets: exact below 256 ns and at most 0.4% relative error from
// there up to HistogramMax (about 68.7 s), which covers 1 µs .. 60 s well
// inside 1%. Quantiles are reported as the midpoint of the bucket holding the
// nearest-rank value, clamped to the recorded minimum and maximum.
//
// The zero value is an empty histogram ready to use. A Histogram is not safe
// for concurrent use: each worker records into its own and the results are
// combined with Merge afterwards, so the hot path takes no lock.
type Histogram struct {
	counts   [numBuckets]int64
	n        int64
	sum      int64 // nanoseconds; 2^63 ns is 292 years of summed latency
	min, max int64
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits
	if shift > maxShift {
		return numBuckets - 1
	}
	return subCount*(shift+1) + int(v>>uint(shift)) - subCount
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (lo, width int64) {
	if i < 2*subCount {
		return int64(i), 1
	}
	shift := i/subCount - 1
	top := int64(i%subCount + subCount)
	return top << uint(shift), 1 << uint(shift)
}

// Record adds one latency. Negative durations are recorded as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds every value recorded in o to h. o is not changed; a nil o is a
// no-op.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of recorded values.
func (h *Histogram) Count() int64 { return h.n }

// Max returns the largest recorded value exactly, 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min returns the smallest recorded value exactly, 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean returns the exact arithmetic mean of the recorded values, 0 when
// empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the q-quantile (0 <= q <= 1) by nearest rank: the value at
// rank ceil(q*Count()), within the histogram's 0.4% resolution. Quantile(0)
// is Min, Quantile(1) is Max, an empty histogram returns 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 || math.IsNaN(q) {
		return time.Duration(h.min)
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		lo, w := bucketRange(i)
		v := lo + (w-1)/2
		if v < h.min {
			v = h.min
		}
		if v > h.max {
			v = h.max
		}
		return time.Duration(v)
	}
	return time.Duration(h.max)
}
