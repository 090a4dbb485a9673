package httpfutures

import "time"

// windowBuckets is how many buckets a window counts its span in.
const windowBuckets = 10

// A window counts two kinds of events (requests and retries; successes and failures; requests
// and accepts) over a sliding span, in windowBuckets buckets of a tenth of it: the counts of a
// bucket go once the span has moved past it. It needs init before use, and is not safe for
// concurrent use: its owner guards it.
type window struct {
	bucket time.Duration
	spans  [windowBuckets]int64 // the span each bucket counts, as a count of buckets since the epoch
	a, b   [windowBuckets]int
}

// init sets the span the window counts over; a span below windowBuckets nanoseconds counts over
// that.
func (w *window) init(span time.Duration) { w.bucket = max(span/windowBuckets, 1) }

// at returns the bucket for now, emptied if it counted an older span, and the span now is in.
func (w *window) at(now time.Time) (int, int64) {
	span := now.UnixNano() / int64(w.bucket)
	i := int(span % windowBuckets)
	if w.spans[i] != span {
		w.spans[i], w.a[i], w.b[i] = span, 0, 0
	}
	return i, span
}

// add counts a events of the first kind and b of the second at now.
func (w *window) add(now time.Time, a, b int) {
	i, _ := w.at(now)
	w.a[i] += a
	w.b[i] += b
}

// sums returns the counts of each kind over the span that ends at now.
func (w *window) sums(now time.Time) (a, b int) {
	_, cur := w.at(now)
	for i, span := range w.spans {
		if span > cur-windowBuckets {
			a += w.a[i]
			b += w.b[i]
		}
	}
	return a, b
}

// reset forgets every count.
func (w *window) reset() {
	w.spans, w.a, w.b = [windowBuckets]int64{}, [windowBuckets]int{}, [windowBuckets]int{}
}
