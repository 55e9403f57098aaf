package simulate

// item is a heap entry due at unix millisecond at; seq breaks ties in
// insertion order, which keeps the simulation deterministic.
type item[T any] struct {
	at  int64
	seq uint64
	v   T
}

// minHeap is a binary min-heap ordered by (at, seq). It is typed rather
// than built on container/heap so that the push and pop of every event on
// the hot path make no interface calls and box no items.
type minHeap[T any] []item[T]

func (h minHeap[T]) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *minHeap[T]) push(it item[T]) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *minHeap[T]) pop() item[T] {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	var zero item[T]
	s[n] = zero // drop the reference for the garbage collector
	s = s[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
