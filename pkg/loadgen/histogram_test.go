package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(rank, 1)
	return sorted[rank-1]
}

func relErr(got, want time.Duration) float64 {
	if want == 0 {
		return math.Abs(float64(got))
	}
	return math.Abs(float64(got-want)) / float64(want)
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 1us..100ms", func() time.Duration {
			return time.Microsecond + time.Duration(rng.Int64N(int64(100*time.Millisecond)))
		}},
		{"exponential mean 2ms", func() time.Duration {
			return time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
		}},
		{"log-uniform 1us..60s", func() time.Duration {
			return time.Duration(math.Exp(math.Log(1e3) + rng.Float64()*(math.Log(60e9)-math.Log(1e3))))
		}},
		{"sub-microsecond", func() time.Duration { return time.Duration(rng.Int64N(1000)) }},
	}
	quantiles := []float64{0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			values := make([]time.Duration, 100000)
			var sum time.Duration
			for i := range values {
				values[i] = tt.gen()
				sum += values[i]
				h.Record(values[i])
			}
			slices.Sort(values)
			if got, want := h.Count(), int64(len(values)); got != want {
				t.Fatalf("Count() = %d, want %d", got, want)
			}
			for _, q := range quantiles {
				got, want := h.Quantile(q), exactQuantile(values, q)
				if e := relErr(got, want); e > 0.01 {
					t.Errorf("Quantile(%v) = %v, want %v within 1%% (error %.3f%%)", q, got, want, 100*e)
				}
			}
			if got, want := h.Quantile(0), values[0]; got != want {
				t.Errorf("Quantile(0) = %v, want min %v", got, want)
			}
			if got, want := h.Quantile(1), values[len(values)-1]; got != want {
				t.Errorf("Quantile(1) = %v, want max %v", got, want)
			}
			if got, want := h.Max(), values[len(values)-1]; got != want {
				t.Errorf("Max() = %v, want %v", got, want)
			}
			if got, want := h.Min(), values[0]; got != want {
				t.Errorf("Min() = %v, want %v", got, want)
			}
			if got, want := h.Mean(), sum/time.Duration(len(values)); got != want {
				t.Errorf("Mean() = %v, want %v", got, want)
			}
		})
	}
}

// TestHistogramBuckets checks the bucket layout itself: every value lands in
// a bucket that contains it, buckets are contiguous, and the reported
// midpoint is within 0.4% of any value of the bucket.
func TestHistogramBuckets(t *testing.T) {
	prevEnd := int64(0)
	for i := range numBuckets {
		lo, w := bucketRange(i)
		if lo != prevEnd {
			t.Fatalf("bucket %d starts at %d, want %d (contiguous)", i, lo, prevEnd)
		}
		prevEnd = lo + w
		for _, v := range []int64{lo, lo + w/2, lo + w - 1} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
			mid := lo + (w-1)/2
			if v > 0 && math.Abs(float64(mid-v))/float64(v) > 1.0/(2*subCount) {
				t.Fatalf("bucket %d midpoint %d is %.4f%% from %d, want <= %.4f%%", i, mid, 100*math.Abs(float64(mid-v))/float64(v), v, 100.0/(2*subCount))
			}
		}
	}
	if got, want := time.Duration(prevEnd-1), HistogramMax; got != want {
		t.Errorf("last bucket ends at %v, want HistogramMax %v", got, want)
	}
	if HistogramMax < 60*time.Second {
		t.Errorf("HistogramMax = %v, want >= 60s", HistogramMax)
	}
	if got := bucketOf(int64(time.Hour)); got != numBuckets-1 {
		t.Errorf("bucketOf(1h) = %d, want last bucket %d", got, numBuckets-1)
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(nil)
	merged.Merge(new(Histogram))
	if merged != all {
		t.Fatalf("merged histogram differs from one recording everything: count %d/%d, min %v/%v, max %v/%v",
			merged.Count(), all.Count(), merged.Min(), all.Min(), merged.Max(), all.Max())
	}
	if got, want := merged.Quantile(0.5), 500*time.Microsecond; relErr(got, want) > 0.01 {
		t.Errorf("merged Quantile(0.5) = %v, want %v within 1%%", got, want)
	}
	if got, want := a.Count()+b.Count(), int64(1000); got != want {
		t.Errorf("sources changed: counts sum to %d, want %d", got, want)
	}
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Errorf("empty histogram: got p50 %v max %v mean %v count %d, want zeros", h.Quantile(0.5), h.Max(), h.Mean(), h.Count())
	}
	h.Record(-time.Second)
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("after Record(-1s): Quantile(0.5) = %v, want 0", got)
	}
	h.Record(2 * time.Hour)
	if got, want := h.Max(), 2*time.Hour; got != want {
		t.Errorf("Max() = %v, want %v beyond HistogramMax", got, want)
	}
}
